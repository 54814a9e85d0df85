"""Faults: a corrupt model, slow and vanishing clients, and SIGTERM in the middle of requests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from conftest import Server, encode, metric, start_server, stop_server, upload_image, wait_for
from generated_models import write_models
from swaparoony.models.specs import SWAPPER
from test_privacy_and_access import image_files

UPLOAD = encode(upload_image())


def partial_upload(server: Server, send_fraction: float) -> socket.socket:
    """Start a multipart upload on a raw socket and send only part of its body."""
    boundary = "swaparoonyboundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="me.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode()
    body = head + UPLOAD + f"\r\n--{boundary}--\r\n".encode()
    url = urlparse(server.url)
    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    connection.sendall(
        f"POST /swap HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: int(len(body) * send_fraction)]
    )
    return connection


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Server]:
    """A server with a 3-second request timeout."""
    running = start_server(tmp_path_factory.mktemp("impatient"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
        "SWAPAROONY_REQUEST_TIMEOUT_S": "3",
    })
    yield running
    stop_server(running.process)


def test_a_request_outliving_the_timeout_gets_504_not_a_hang(impatient: Server) -> None:
    connection = partial_upload(impatient, 0.5)
    started = time.monotonic()
    reply = ""
    while "seconds" not in reply and time.monotonic() - started < 15:
        chunk = connection.recv(4096).decode(errors="replace")
        if not chunk:
            break
        reply += chunk
    connection.close()
    assert reply.startswith("HTTP/1.1 504"), reply[:200]
    assert "3 seconds" in reply and '"code": "timeout"' in reply and time.monotonic() - started < 15
    assert httpx.post(impatient.url + "/faces", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}).status_code == 200


def test_clients_vanishing_mid_upload_leave_nothing_behind(impatient: Server) -> None:
    before = image_files(impatient.tmpdir, impatient.workdir)
    for fraction in (0.1, 0.5, 0.9) * 7:
        partial_upload(impatient, fraction).close()
    response = httpx.post(impatient.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, timeout=60)
    assert response.status_code == 200
    assert image_files(impatient.tmpdir, impatient.workdir) == before
    assert impatient.process.poll() is None


def test_corrupt_model_is_named_in_the_log_and_not_to_clients(tmp_path: Path, models_dir: Path, gallery_dir: Path) -> None:
    broken = Path(shutil.copytree(models_dir, tmp_path / "models"))
    (broken / SWAPPER.relative_path).write_bytes(b"<html><body>Rate limit exceeded</body></html>")
    running = start_server(tmp_path, {"SWAPAROONY_MODELS_DIR": str(broken), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir)},
                           wait_ready=False)
    try:
        ready = httpx.get(running.url + "/readyz")
        assert ready.status_code == 503 and "model files" in ready.json()["error"]
        response = httpx.post(running.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")})
        assert response.status_code == 503 and response.json()["code"] == "not_ready"
        assert "model files are missing or invalid" in response.json()["error"]
        assert str(tmp_path) not in response.text and "http" not in response.text  # no server paths, no URLs
        assert str(broken / SWAPPER.relative_path) in running.log() and "corrupt" in running.log()
    finally:
        stop_server(running.process)


@pytest.fixture(scope="module")
def costly_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated models with about the real compute: a request takes seconds on a CPU."""
    return write_models(tmp_path_factory.mktemp("costly_models"), cost_faithful=True)


def active_requests(server: Server) -> float:
    return metric(server, 'swaparoony_requests_held{state="active"}')


def test_sigterm_lets_in_flight_requests_finish_then_exits(tmp_path: Path, costly_models: Path, gallery_dir: Path) -> None:
    running = start_server(tmp_path, {"SWAPAROONY_MODELS_DIR": str(costly_models), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir)})
    try:
        def swap(_: int) -> int:
            return httpx.post(running.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, timeout=120).status_code

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(swap, i) for i in range(3)]
            # every request admitted and in flight, none answered yet
            wait_for(lambda: active_requests(running) >= 3, "three requests in flight")
            assert not any(f.done() for f in futures)
            os.kill(running.process.pid, signal.SIGTERM)  # what Kubernetes sends to the container's PID 1
            statuses = [f.result() for f in futures]
        assert statuses == [200] * 3
        assert running.process.wait(timeout=120) == 0
        log = running.log().splitlines()
        sigterm = next(i for i, line in enumerate(log) if "swaparoony-models" in line and "SIGTERM" in line)
        drained = next(line for line in log[sigterm:] if "model service: every API worker has drained" in line)
        served_after = int(re.search(r"after answering (\d+) model calls since SIGTERM", drained).group(1))
        assert served_after > 0, "no model call was served after SIGTERM"
    finally:
        stop_server(running.process)


def test_sigterm_exits_even_with_a_stuck_request(tmp_path: Path, models_dir: Path, gallery_dir: Path) -> None:
    running = start_server(tmp_path, {"SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
                                      "SWAPAROONY_REQUEST_TIMEOUT_S": "3"})
    try:
        stuck = partial_upload(running, 0.5)  # never finishes its body
        wait_for(lambda: metric(running, 'swaparoony_requests_held{state="receiving"}') >= 1, "the stuck upload to be received")
        os.kill(running.process.pid, signal.SIGTERM)
        assert running.process.wait(timeout=60) == 0  # the stuck request is answered 504 at its deadline, then exit
        assert stuck.recv(4096).startswith(b"HTTP/1.1 504")
        stuck.close()
    finally:
        stop_server(running.process)
