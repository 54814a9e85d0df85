"""Faults: a corrupt model, slow and vanishing clients, and SIGTERM in the middle of requests."""

from __future__ import annotations

import base64
import json
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

from conftest import Server, SharedServer, encode, metric, start_server, stop_server, upload_image, wait_for
from swaparoony.errors import ModelsUnavailable
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.inswapper import SWAPPER
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
def impatient_server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path,
                     gallery_dir: Path) -> Iterator[SharedServer]:
    """A server with a 3-second request timeout, shared until the SIGTERM test takes it."""
    shared = SharedServer(tmp_path_factory.mktemp("impatient"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
        "SWAPAROONY_REQUEST_TIMEOUT_S": "3",
    })
    yield shared
    shared.close()


@pytest.fixture
def impatient(impatient_server: SharedServer) -> Server:
    return impatient_server.get()


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


def test_the_booth_frontends_route_answers_its_timeout_in_its_documented_shape(impatient: Server) -> None:
    body = b'{"image": "' + base64.b64encode(UPLOAD)
    url = urlparse(impatient.url)
    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    connection.sendall(f"POST /v1/models/swaparoony-face-swap:predict HTTP/1.1\r\nHost: {url.netloc}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body) + 100}\r\n\r\n".encode() + body)
    reply = b""
    while not reply.endswith(b"}"):
        chunk = connection.recv(4096)
        if not chunk:
            break
        reply += chunk
    connection.close()
    head, _, answer = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504"), reply[:200]
    parsed = json.loads(answer)
    assert parsed["success"] is False and parsed["error"] == "Gateway Timeout" and "3 seconds" in parsed["detail"]


def test_clients_vanishing_mid_upload_leave_nothing_behind(impatient: Server) -> None:
    before = image_files(impatient.tmpdir, impatient.workdir)
    for fraction in (0.1, 0.5, 0.9) * 7:
        partial_upload(impatient, fraction).close()
    response = httpx.post(impatient.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, timeout=60)
    assert response.status_code == 200
    assert image_files(impatient.tmpdir, impatient.workdir) == before
    assert impatient.process.poll() is None


def test_corrupt_model_is_named_in_the_log_and_not_to_clients(tmp_path: Path, models_dir: Path,
                                                              no_models_server: Server) -> None:
    broken = Path(shutil.copytree(models_dir, tmp_path / "models"))
    (broken / SWAPPER.relative_path).write_bytes(b"<html><body>Rate limit exceeded</body></html>")
    # What the model service logs when its models will not load (the message of the error it catches)...
    with pytest.raises(ModelsUnavailable) as refused:
        LoadedModels.load(broken)
    assert str(broken / SWAPPER.relative_path) in str(refused.value) and "corrupt" in str(refused.value)
    # ...and what clients get while they do not: the same 503 whatever the files' fault (here, none at all).
    running = no_models_server
    ready = httpx.get(running.url + "/readyz")
    assert ready.status_code == 503 and "model files" in ready.json()["error"]
    response = httpx.post(running.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")})
    assert response.status_code == 503 and response.json()["code"] == "not_ready"
    assert "model files are missing or invalid" in response.json()["error"]
    assert str(running.workdir) not in response.text and "http" not in response.text  # no server paths, no URLs


def active_requests(server: Server) -> float:
    return metric(server, 'swaparoony_requests_held{state="active"}')


def test_sigterm_lets_in_flight_requests_finish_then_exits(tmp_path: Path, slow_models: Path, gallery_dir: Path) -> None:
    running = start_server(tmp_path, {"SWAPAROONY_MODELS_DIR": str(slow_models), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir)})
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


def test_sigterm_exits_even_with_a_stuck_request(impatient_server: SharedServer) -> None:
    running = impatient_server.take()  # this test stops it
    try:
        receiving = 'swaparoony_requests_held{state="receiving"}'
        before = metric(running, receiving)
        stuck = partial_upload(running, 0.5)  # never finishes its body
        wait_for(lambda: metric(running, receiving) >= before + 1, "the stuck upload to be received")
        os.kill(running.process.pid, signal.SIGTERM)
        assert running.process.wait(timeout=60) == 0  # the stuck request is answered 504 at its deadline, then exit
        assert stuck.recv(4096).startswith(b"HTTP/1.1 504")
        stuck.close()
    finally:
        stop_server(running.process)
