"""Bodies are bounded before they are read: huge uploads get 413 at once and never touch the disk."""

from __future__ import annotations

import base64
import os
import select
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil
import pytest

from conftest import Server, encode, upload_image

UPLOAD = encode(upload_image())
MIB = 1024 * 1024
PREDICT = "/v1/models/swaparoony-face-swap:predict"


def server_files(server: Server) -> set[str]:
    """What every process of the server has open that is a file (not a socket, pipe or device)."""
    root = psutil.Process(server.process.pid)
    found = set()
    for process in (root, *root.children(recursive=True)):
        fd_dir = Path(f"/proc/{process.pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("/") and not target.startswith("/dev/"):
                    found.add(target)
        except OSError:
            continue
    return found


def temp_files(server: Server) -> set[str]:
    """Open files that could hold request data: anything deleted, or anything in a temporary directory
    other than BentoML's metrics files."""
    temp_roots = (str(server.tmpdir), "/tmp/", "/var/tmp/", "/dev/shm/")
    return {f for f in server_files(server)
            if f.endswith("(deleted)") or (f.startswith(temp_roots) and "/prometheus_multiproc_dir/" not in f)}


class FileWatcher:
    """Samples the server's open files in a thread while an upload runs; `seen` is what was not open before."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.before = temp_files(server)  # the log and BentoML's metrics files
        self.seen: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen |= temp_files(self.server) - self.before
            self.samples += 1

    def __enter__(self) -> FileWatcher:
        self._thread.start()
        while self.samples == 0:
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


def stream_upload(server: Server, path: str, head: bytes, total: int, chunked: bool) -> tuple[str, float, int]:
    """Send head plus `total` bytes of body on a raw socket, reading as we go; (reply, seconds, bytes sent)."""
    url = urlparse(server.url)
    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(head) + total}\r\n".encode()
    connection.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: multipart/form-data; boundary=b\r\n".encode()
        + framing + b"\r\n"
    )
    chunk = b"\0" * MIB
    started = time.monotonic()
    sent, reply = 0, b""
    pieces = [head] + [chunk] * (total // MIB)
    try:
        for piece in pieces:
            if select.select([connection], [], [], 0)[0]:
                break  # the server has answered
            connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
    except OSError:
        pass  # the server closed the connection after answering
    try:
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = connection.recv(65536)
            if not data:
                break
            reply += data
    except OSError:
        pass
    connection.close()
    return reply.decode(errors="replace"), time.monotonic() - started, sent


def file_part_head() -> bytes:
    return b'--b\r\nContent-Disposition: form-data; name="image"; filename="me.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'


def test_a_200_mib_upload_is_refused_from_its_content_length_and_never_spooled(server: Server) -> None:
    with FileWatcher(server) as watcher:
        reply, seconds, sent = stream_upload(server, "/swap", file_part_head(), 200 * MIB, chunked=False)
    assert reply.startswith("HTTP/1.1 413"), reply[:300]
    assert '"code": "too_large"' in reply and "limit" in reply
    assert seconds < 10 and sent < 200 * MIB
    assert watcher.samples > 0 and watcher.seen == set()
    assert httpx.post(server.url + "/faces", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}).status_code == 200


def test_a_300_mib_chunked_upload_is_stopped_at_the_limit_and_never_spooled(server: Server) -> None:
    with FileWatcher(server) as watcher:
        reply, seconds, sent = stream_upload(server, "/swap", file_part_head(), 300 * MIB, chunked=True)
    assert reply.startswith("HTTP/1.1 413"), reply[:300]
    assert sent < 40 * MIB, f"the server read {sent:,} bytes before refusing"
    assert watcher.samples > 0 and watcher.seen == set()


@pytest.mark.parametrize("route", ["/swap", "/api/v1/swap"])
def test_a_form_with_too_many_parts_is_400(server: Server, route: str) -> None:
    parts = [("image", ("me.jpg", UPLOAD, "image/jpeg"))] + [(f"extra{i}", (f"x{i}.jpg", b"x" * 1000, "image/jpeg")) for i in range(200)]
    response = httpx.post(server.url + route, files=parts, timeout=60)
    assert response.status_code == 400, response.text[:300]
    assert "Maximum number of files is 16" in response.text


@pytest.mark.parametrize("value", ["[" * 30_000 + "]" * 30_000, "9" * 5000, '{"a":' * 10_000 + "1" + "}" * 10_000])
@pytest.mark.parametrize("field", ["source_face_id", "destination_face_id", "destinations", "output_format"])
def test_hostile_text_fields_are_4xx_not_500(server: Server, field: str, value: str) -> None:
    response = httpx.post(server.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={field: value}, timeout=60)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["code"]


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"image": "' + base64.b64encode(UPLOAD) + b'", "source_face_id": ' + b"9" * 5000 + b"}",
    b'{"image": "' + base64.b64encode(UPLOAD) + b'", "source_face_id": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b"\xff\xfe not utf-8",
])
def test_hostile_kserve_bodies_are_400_json(server: Server, body: bytes) -> None:
    response = httpx.post(server.url + PREDICT, content=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.json()["success"] is False and response.json()["detail"]


def test_a_400_mb_kserve_body_is_refused_at_once(server: Server) -> None:
    head = b'{"image": "'
    reply, seconds, sent = stream_upload(server, PREDICT, head, 400 * MIB, chunked=False)
    assert reply.startswith("HTTP/1.1 413"), reply[:300]
    assert seconds < 10 and sent < 400 * MIB
