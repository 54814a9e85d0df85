"""Slow or tokenless bodies cannot hold the service: bodies arrive in slots of their own, within a minimum rate,
and tokens are checked from the headers before a byte of the body is read."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from conftest import Server, encode, metric, start_server, stop_server, upload_image, wait_for
from http_api.client_key import client_key

API_TOKEN = "kiosk-token-for-admission-tests"
ADMIN_TOKEN = "operator-token-for-admission-tests"
KIOSK = {"Authorization": f"Bearer {API_TOKEN}"}
UPLOAD = encode(upload_image())
SLOW_UPLOADS = 16


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Server]:
    """Two working slots, twenty receiving; a body must keep up 1,000 bytes/s after 2 s; both tokens set."""
    running = start_server(tmp_path_factory.mktemp("admission"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
        "SWAPAROONY_MAX_ACTIVE_REQUESTS": "2", "SWAPAROONY_MAX_RECEIVING_REQUESTS": "20",
        "SWAPAROONY_BODY_TIMEOUT_S": "2", "SWAPAROONY_MIN_BODY_RATE": "1000",
        "SWAPAROONY_API_TOKEN": API_TOKEN, "SWAPAROONY_ADMIN_TOKEN": ADMIN_TOKEN,
    })
    yield running
    stop_server(running.process)


def held(server: Server, state: str) -> float:
    return metric(server, f'swaparoony_requests_held{{state="{state}"}}')


def open_upload(server: Server, path: str = "/swap", length: int = 10_000_000, headers: str = "",
                method: str = "POST") -> socket.socket:
    """A request whose headers are sent and whose body has not started."""
    url = urlparse(server.url)
    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    connection.sendall(f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                       f"Content-Length: {length}\r\n{headers}\r\n".encode())
    return connection


def reply_of(connection: socket.socket) -> str:
    """Everything the server sends until it closes the connection or ends a JSON body."""
    reply = b""
    while not reply.rstrip().endswith(b"}"):
        data = connection.recv(65536)
        if not data:
            break
        reply += data
    return reply.decode(errors="replace")


class SlowUploads:
    """Uploads that keep to 2,000 bytes/s, over the minimum rate, with 10 MB still to send: honest and slow."""

    def __init__(self, server: Server, count: int) -> None:
        self.connections = [open_upload(server, headers=f"Authorization: Bearer {API_TOKEN}\r\n") for _ in range(count)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        while not self.stop.wait(0.1):
            for connection in self.connections:
                connection.sendall(b"\0" * 200)

    def answered(self) -> list[socket.socket]:
        """The uploads the server has written to (or closed): none should be."""
        return select.select(self.connections, [], [], 0)[0]

    def __enter__(self) -> SlowUploads:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        for connection in self.connections:
            connection.close()


def test_slow_uploads_hold_receiving_slots_never_working_ones(guarded: Server) -> None:
    with SlowUploads(guarded, SLOW_UPLOADS) as slow:
        wait_for(lambda: held(guarded, "receiving") == SLOW_UPLOADS, "every slow upload to be receiving")
        for _ in range(3):  # more than the two working slots, one after another
            probe = httpx.post(guarded.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, headers=KIOSK,
                               timeout=60)
            assert probe.status_code == 200, probe.text[:300]
        assert slow.answered() == [], "a slow upload was answered while the probes ran"
        assert held(guarded, "receiving") == SLOW_UPLOADS
    wait_for(lambda: held(guarded, "receiving") == 0 and held(guarded, "active") == 0, "the slow uploads to go")


def test_a_trickled_body_is_answered_408_and_closed(guarded: Server) -> None:
    connection = open_upload(guarded, headers=f"Authorization: Bearer {API_TOKEN}\r\n")
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.3):
            try:
                connection.sendall(b"x")
            except OSError:
                return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        reply = reply_of(connection)
    finally:
        stop.set()
        sender.join(10)
        connection.close()
    assert reply.startswith("HTTP/1.1 408"), reply[:300]
    assert '"code": "body_timeout"' in reply and "1,000 bytes per second" in reply
    assert re.search(r"bytes in [23] seconds", reply), reply[:400]  # when it was cut: just past the 2 s allowed
    assert "connection: close" in reply.lower()
    wait_for(lambda: "answered: The request body arrived too slowly" in guarded.log(), "the 408's warning line")


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    ("POST", "/swap", "", 401),
    ("POST", "/swap", f"Authorization: Bearer {ADMIN_TOKEN}\r\n", 401),
    ("PUT", "/destinations/x.png", "", 403),
    ("PUT", "/destinations/x.png", f"Authorization: Bearer {API_TOKEN}\r\n", 403),  # the kiosk's token is not enough
])
def test_a_body_without_its_token_is_refused_before_it_is_read(guarded: Server, method: str, path: str, headers: str,
                                                               status: int) -> None:
    connections = [open_upload(guarded, path, headers=headers, method=method) for _ in range(25)]
    try:
        replies = [reply_of(connection) for connection in connections]  # answered without a byte of body sent
    finally:
        for connection in connections:
            connection.close()
    assert all(reply.startswith(f"HTTP/1.1 {status}") for reply in replies), replies[0][:300]
    assert held(guarded, "receiving") == 0 and held(guarded, "active") == 0


def test_a_client_gone_mid_upload_is_one_warning_line_not_a_500(guarded: Server) -> None:
    closed = 'swaparoony_requests_total{code="client_closed",route="/swap",status="499"}'
    before = metric(guarded, closed)
    connection = open_upload(guarded, length=len(UPLOAD) + 500, headers=f"Authorization: Bearer {API_TOKEN}\r\n")
    connection.sendall(UPLOAD[:1234])  # a count no other client in this module sends, so the line is this one's
    wait_for(lambda: held(guarded, "receiving") == 1, "the upload to be receiving")
    connection.close()
    wait_for(lambda: metric(guarded, closed) == before + 1, "the closed upload to be counted as 499")
    lines = [line for line in guarded.log().splitlines() if "closed the connection after 1,234 bytes" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], lines
    assert "Traceback" not in guarded.log()
    assert metric(guarded, 'swaparoony_requests_total{code="internal_error",route="/swap",status="500"}') == 0


@pytest.mark.parametrize(("headers", "peer", "key"), [
    ([], ("10.1.2.3", 5555), "10.1.2.3"),
    ([(b"x-forwarded-for", b"203.0.113.9")], ("10.128.0.7", 5555), "203.0.113.9"),
    ([(b"x-forwarded-for", b"6.6.6.6, 198.51.100.4")], ("10.128.0.7", 5555), "198.51.100.4"),  # the proxy's own entry
    ([], None, "unknown"),
])
def test_the_decode_queue_takes_turns_by_the_address_a_proxy_vouches_for(headers: list, peer: tuple | None,
                                                                         key: str) -> None:
    assert client_key({"type": "http", "headers": headers, "client": peer}) == key


def test_the_server_stops_on_sigterm_at_once_after_clients_hung_up(guarded: Server) -> None:
    """Last in this module: it stops the module's server. A request let go because its client hung up (mid-body here,
    after the body in test_work_budget) must not keep its task, and so the shutdown, waiting the request timeout."""
    connection = open_upload(guarded, length=len(UPLOAD) + 500, headers=f"Authorization: Bearer {API_TOKEN}\r\n")
    connection.sendall(UPLOAD[:1000])
    wait_for(lambda: held(guarded, "receiving") == 1, "the upload to be receiving")
    connection.close()
    wait_for(lambda: held(guarded, "receiving") == 0, "the closed upload to be let go")
    started = time.monotonic()
    os.killpg(guarded.process.pid, signal.SIGTERM)
    assert guarded.process.wait(timeout=60) == 0
    assert time.monotonic() - started < 20, guarded.log()[-2000:]  # was the request timeout, 290 s by default
