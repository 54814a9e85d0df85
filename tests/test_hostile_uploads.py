"""Valid files built to be costly, floods of requests and a broken gallery, through a real server."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import cv2
import httpx
import psutil
import pytest

from conftest import Server, SharedServer, encode, metric, start_server, stop_server, upload_image, wait_for
from generated_models import draw_faces
from hostile_files import (
    chunk_bomb_png, flat_rgba_png, flat_webp, marker_bomb_jpeg, progressive_jpeg, scan_bomb, sixteen_bit_png,
)

UPLOAD = encode(upload_image())
MIB = 1024 * 1024


def post(server: Server, image: bytes, route: str = "/swap", timeout: float = 120) -> httpx.Response:
    return httpx.post(server.url + route, files={"image": ("me.jpg", image, "image/jpeg")}, timeout=timeout)


def decode_workers(server: Server) -> set[int]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return {p.pid for p in children if "swaparoony.imaging.decode_worker" in " ".join(p.cmdline())}


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Server]:
    """Half a second a decode, 40 MiB uploads."""
    running = start_server(tmp_path_factory.mktemp("hardened"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
        "SWAPAROONY_DECODE_TIMEOUT_S": "0.5",
        "SWAPAROONY_MAX_UPLOAD_BYTES": str(40 * MIB),
    })
    yield running
    stop_server(running.process)


def test_a_scan_bomb_is_refused_before_decoding(hardened: Server) -> None:
    response = post(hardened, scan_bomb(progressive_jpeg((2000, 2000)), copies=3000))
    assert response.status_code == 422 and response.json()["code"] == "too_costly"
    assert "3,010 scans" in response.json()["error"]


def test_a_decode_past_its_deadline_is_stopped_and_refused(hardened: Server) -> None:
    slow = scan_bomb(progressive_jpeg((4000, 4000)), copies=50, largest=True)  # under the scan limit, about 2 s
    workers = decode_workers(hardened)
    response = post(hardened, slow)
    assert response.status_code == 422, response.text[:300]
    assert "within 0.5 seconds" in response.json()["error"]
    wait_for(lambda: len(decode_workers(hardened)) == len(workers), "the killed worker to be replaced")
    assert decode_workers(hardened) != workers  # the worker holding the decode was killed, not left running
    assert post(hardened, UPLOAD).status_code == 200


def test_valid_requests_are_served_while_hostile_uploads_are_in_flight(hardened: Server) -> None:
    slow = scan_bomb(progressive_jpeg((4000, 4000)), copies=50, largest=True)
    hostile = [slow] * 3 + [sixteen_bit_png((6300, 6300))] * 3
    with ThreadPoolExecutor(len(hostile) + 1) as pool:
        attacks = [pool.submit(post, hardened, data) for data in hostile]
        valid = pool.submit(post, hardened, UPLOAD)
        assert valid.result().status_code == 200
        answers = [attack.result() for attack in attacks]
    # Each attack refused (422), or shed while the decoders are taken (503, retry later): never served, never a 500.
    assert all(answer.status_code == 422 or (answer.status_code == 503 and answer.json()["code"] == "not_ready")
               for answer in answers), [(answer.status_code, answer.text[:200]) for answer in answers]


@pytest.mark.parametrize(("kind", "refusal"), [("png", "more than 20,000 chunks"),
                                               ("jpeg", "more than 10,000 markers or padding bytes")])
def test_chunk_and_marker_bombs_are_refused_at_once_while_a_valid_upload_is_served(
        hardened: Server, kind: str, refusal: str) -> None:
    # Four PNGs of 1.7 million empty chunks each held both decoders for their whole deadline, one after another;
    # 2 million empty JPEG comments (7 MiB) cost Pillow 2.4 s each.
    bomb = chunk_bomb_png(1_700_000) if kind == "png" else marker_bomb_jpeg(UPLOAD, 2_000_000)
    with ThreadPoolExecutor(5) as pool:
        started = time.monotonic()
        attacks = [pool.submit(post, hardened, bomb) for _ in range(4)]
        valid = pool.submit(post, hardened, UPLOAD)
        assert valid.result().status_code == 200
        for attack in attacks:
            response = attack.result()
            assert response.status_code == 422 and response.json()["code"] == "too_costly"
            assert refusal in response.json()["error"]  # counted, not decoded to the deadline
    assert time.monotonic() - started < 30


def test_the_largest_allowed_lossless_webp_is_decoded_not_refused(server: Server) -> None:
    # 16000x2500 = 40 MP, the default pixel limit, in 38 bytes: it was refused too_costly by the memory cap.
    response = post(server, flat_webp((16000, 2500)), route="/faces")
    assert response.status_code == 200, response.text[:300]  # decoded and searched (the generated detector's faces)


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Server]:
    """One body received and one request worked on at a time, one more queued, 180 MiB of address space a decode (the
    interpreter takes 110)."""
    running = start_server(tmp_path_factory.mktemp("narrow"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
        "SWAPAROONY_MAX_ACTIVE_REQUESTS": "1", "SWAPAROONY_MAX_RECEIVING_REQUESTS": "1",
        "SWAPAROONY_MAX_QUEUED_REQUESTS": "1", "SWAPAROONY_DECODE_MEMORY_MIB": "180",
    })
    yield running
    stop_server(running.process)


def held_upload(server: Server) -> socket.socket:
    """An upload whose body never finishes: it holds its place until the socket closes."""
    url = urlparse(server.url)
    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    connection.sendall(f"POST /swap HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                       f"Content-Length: {len(UPLOAD) + 200}\r\n\r\n--b\r\n".encode())
    return connection


def requests_gauge(server: Server, state: str) -> float:
    return metric(server, f'swaparoony_requests_held{{state="{state}"}}')


def test_past_the_queue_requests_get_503_with_retry_after(narrow: Server) -> None:
    receiving = held_upload(narrow)  # its body never ends: it holds the one receiving slot
    wait_for(lambda: requests_gauge(narrow, "receiving") == 1, "the first upload to be receiving")
    queued = held_upload(narrow)
    wait_for(lambda: requests_gauge(narrow, "queued") == 1, "the second upload to be queued")
    refused = post(narrow, UPLOAD, timeout=30)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["code"] == "busy" and "retry" in refused.json()["error"]
    receiving.close()
    queued.close()
    wait_for(lambda: requests_gauge(narrow, "receiving") + requests_gauge(narrow, "queued") == 0,
             "the held uploads to go")
    assert post(narrow, UPLOAD).status_code == 200


def test_a_decode_past_the_memory_budget_is_refused(narrow: Server) -> None:
    response = post(narrow, flat_rgba_png((6000, 6000)))  # 144 MB of pixels before it can be reduced
    assert response.status_code == 422 and "memory" in response.json()["error"]
    assert post(narrow, UPLOAD).status_code == 200


def test_special_and_unreadable_gallery_files_are_skipped_with_a_reason(tmp_path: Path, models_dir: Path) -> None:
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    cv2.imwrite(str(gallery / "portrait.jpg"), draw_faces((640, 640), [(320, 320)]))
    os.mkfifo(gallery / "fifo.jpg")  # opening it for reading would block a thread forever
    (gallery / "folder.png").mkdir()
    (gallery / "loop.webp").symlink_to(gallery / "loop.webp")
    running = start_server(tmp_path / "server", {"SWAPAROONY_MODELS_DIR": str(models_dir),
                                                 "SWAPAROONY_DESTINATIONS_DIR": str(gallery)})
    try:
        assert httpx.get(running.url + "/livez", timeout=5).status_code == 200
        listed = {d["name"]: d for d in httpx.post(running.url + "/destinations").json()}
        assert listed["portrait.jpg"]["faces"] == 1
        assert "not a regular file" in listed["fifo.jpg"]["reason"] and "not a regular file" in listed["folder.png"]["reason"]
        assert "cannot be read" in listed["loop.webp"]["reason"]
        assert all(str(tmp_path) not in str(d["reason"]) for d in listed.values())  # no server paths to clients
        assert post(running, UPLOAD).status_code == 200
        assert str(gallery / "fifo.jpg") in running.log()  # the operator's log names the file
    finally:
        stop_server(running.process)


def test_an_unreadable_gallery_makes_readyz_say_why_at_once(unready_gallery: tuple[SharedServer, Path]) -> None:
    shared, not_a_directory = unready_gallery
    if not_a_directory.is_dir():  # a test before this one gave the shared path a directory (and took its server)
        shutil.rmtree(not_a_directory)
    not_a_directory.write_text("a file where the directory should be")
    running = shared.get()
    wait_for(lambda: "cannot be read" in httpx.get(running.url + "/readyz", timeout=5).text, "/readyz to say why")
    ready = httpx.get(running.url + "/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["code"] == "not_ready"
    assert str(not_a_directory) not in ready.text
    response = post(running, UPLOAD, timeout=30)
    assert response.status_code == 503 and "cannot be read" in response.json()["error"]
    assert str(not_a_directory) in running.log()
