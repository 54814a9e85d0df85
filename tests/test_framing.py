"""Nothing one client sends can starve, stall or swell the service: request heads are bounded in bytes,
lines and time before any application code, connections per worker are capped, metric labels are bounded,
and the supervisor takes orders only from the server's own user (http_api/patches.py, which service.py installs).
One real server for the module; the units at the end hand FramingProtocol reads split as they choose."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import resource
import select
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import psutil
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from conftest import Server, start_server, stop_server, wait_for
from http_api.framing import FramingLimits, FramingProtocol, HeadersTooLarge, HeadMeter, RequestLineTooLong
from swaparoony.settings import Settings

MAX_CONNECTIONS = 400
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Server]:
    """One API worker, so its connection cap is the server's; heads are given one second."""
    running = start_server(tmp_path_factory.mktemp("edge"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
        "SWAPAROONY_API_WORKERS": "1", "SWAPAROONY_HEADER_TIMEOUT_S": "1",
        "SWAPAROONY_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    })
    yield running
    stop_server(running.process)


def connect(server: Server) -> socket.socket:
    url = urlparse(server.url)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def head(lines: list[bytes], path: bytes = b"/livez") -> bytes:
    """A GET request's head with these header lines."""
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def answer(connection: socket.socket, seconds: float = 10) -> tuple[int, bool]:
    """The status of the server's reply, once it has all come, and whether the server then closed the
    connection (waiting for that only after a refusal, which must close it)."""
    received = b""
    deadline = time.monotonic() + seconds
    while not whole(received) and time.monotonic() < deadline:
        chunk = read(connection, deadline)
        if not chunk:
            break
        received += chunk
    status = int(received[9:12]) if re.match(rb"HTTP/1\.1 \d{3} ", received) else 0
    if status < 400 or not whole(received):
        return status, not whole(received)
    return status, read(connection, deadline) == b""


def read(connection: socket.socket, deadline: float) -> bytes | None:
    """What the server sent next: b"" once it has closed (or reset) the connection, None by the deadline."""
    readable, _, _ = select.select([connection], [], [], max(deadline - time.monotonic(), 0))
    if not readable:
        return None
    try:
        return connection.recv(65536)
    except ConnectionResetError:
        return b""


def whole(received: bytes) -> bool:
    """Whether `received` holds a whole response with a Content-Length body."""
    head, blank, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return bool(blank) and length is not None and len(body) >= int(length.group(1))


def ask(server: Server, request: bytes) -> tuple[int, bool]:
    """(status, closed) for one request on a fresh connection."""
    with connect(server) as connection:
        connection.sendall(request)
        return answer(connection)


def processes(server: Server) -> list[psutil.Process]:
    root = psutil.Process(server.process.pid)
    return [root, *root.children(recursive=True)]


def resident_bytes(server: Server) -> int:
    total = 0
    for process in processes(server):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


class PeakMemory:
    """The highest resident memory of all the server's processes, sampled in a thread while a block runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.before = resident_bytes(server)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, resident_bytes(self.server))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.peak = max(self.peak, resident_bytes(self.server))


def flood(server: Server, start: bytes, chunk: bytes, budget: int) -> tuple[int, int]:
    """Send `start`, then `chunk` again and again until the server answers or stops reading, at most `budget`
    bytes; (the reply's status, bytes sent)."""
    with connect(server) as connection:
        connection.sendall(start)
        sent = len(start)
        while sent < budget:
            readable, writable, _ = select.select([connection], [connection], [], 10)
            if readable or not writable:
                break
            try:
                sent += connection.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        return answer(connection)[0], sent


def test_an_endless_header_stream_is_cut_with_431_and_memory_stays_bounded(edge: Server) -> None:
    with PeakMemory(edge) as memory:
        status, sent = flood(edge, head([])[:-2], b"".join(b"X%d:b\r\n" % n for n in range(10_000)), 64 * MIB)
    assert status == 431
    assert sent < 16 * MIB, f"the server read {sent} bytes of headers before refusing"
    assert memory.peak - memory.before < 32 * MIB, f"server memory grew {(memory.peak - memory.before) / MIB:.0f} MiB"
    assert "answered 431: more than 100 header lines (SWAPAROONY_MAX_HEADERS)" in edge.log()


def test_one_endless_header_line_is_cut_with_431_and_memory_stays_bounded(edge: Server) -> None:
    with PeakMemory(edge) as memory:
        status, sent = flood(edge, head([])[:-2] + b"X: ", b"b" * 65536, 64 * MIB)
    assert status == 431
    assert sent < 16 * MIB, f"the server read {sent} bytes of one header before refusing"
    assert memory.peak - memory.before < 32 * MIB, f"server memory grew {(memory.peak - memory.before) / MIB:.0f} MiB"


def test_a_long_request_line_gets_414_and_the_connection_closes(edge: Server) -> None:
    assert ask(edge, head([], b"/livez?" + b"a" * 8192)) == (414, True)
    assert ask(edge, head([], b"/livez?" + b"a" * 8100))[0] == 200


def test_header_lines_count_and_size_are_bounded(edge: Server) -> None:
    assert ask(edge, head([b"X%d: b" % n for n in range(99)]))[0] == 200  # with Host, 100 lines
    assert ask(edge, head([b"X%d: b" % n for n in range(100)])) == (431, True)
    assert ask(edge, head([b"X: " + b"b" * 16300]))[0] == 200
    assert ask(edge, head([b"X: " + b"b" * 16400])) == (431, True)
    assert ask(edge, head([b"X%d: " % n + b"b" * 16000 for n in range(5)])) == (431, True)  # 80 KB in all


def test_malformed_heads_still_get_400(edge: Server) -> None:
    assert ask(edge, b"GET /livez HTTP/1.1\nHost: x\n\n") == (400, True)


def test_a_slow_header_trickle_gets_408_and_the_socket_closes(edge: Server) -> None:
    with connect(edge) as connection:
        connection.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        for n in range(40):  # one header byte every 0.1 s, for at most 4 s
            readable, _, _ = select.select([connection], [], [], 0.1)
            if readable:
                break
            try:
                connection.sendall(b"X%d: b\r\n" % n)
            except (BrokenPipeError, ConnectionResetError):
                break
            assert httpx.get(edge.url + "/livez").status_code == 200  # others are served meanwhile
        assert answer(connection) == (408, True)
    assert 0.9 < time.monotonic() - started < 3
    assert "answered 408: a request line and headers not all received within 1 s" in edge.log()


def test_the_deadline_counts_from_each_requests_first_byte_on_a_kept_connection(edge: Server) -> None:
    with connect(edge) as connection:
        connection.sendall(head([]))
        assert answer(connection, 2) == (200, False)
        connection.sendall(b"GET /livez HTTP/1.1\r\n")
        assert answer(connection) == (408, True)


def test_idle_sockets_are_closed_after_the_deadline(edge: Server) -> None:
    raise_own_file_limit(MAX_CONNECTIONS + 200)
    idle = [connect(edge) for _ in range(300)]
    try:
        assert httpx.get(edge.url + "/livez").status_code == 200  # a fresh connection is served meanwhile
        closed = wait_for_eof(idle, 10)
        assert len(closed) == len(idle), f"{len(idle) - len(closed)} of {len(idle)} idle sockets left open"
    finally:
        for connection in idle:
            connection.close()


def test_connections_past_the_cap_are_closed_at_once(edge: Server) -> None:
    raise_own_file_limit(MAX_CONNECTIONS + 200)
    before = edge.log().count("(SWAPAROONY_MAX_CONNECTIONS)")
    extra = 20
    opened = [connect(edge) for _ in range(MAX_CONNECTIONS + extra)]
    try:
        wait_for(lambda: edge.log().count("(SWAPAROONY_MAX_CONNECTIONS)") - before >= extra, "the extras closed", 10)
        assert len(wait_for_eof(opened, 10)) == len(opened)
    finally:
        for connection in opened:
            connection.close()
    assert edge.log().count("(SWAPAROONY_MAX_CONNECTIONS)") - before == extra
    wait_for(lambda: httpx.get(edge.url + "/livez").status_code == 200, "serving again", 10)


def raise_own_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def wait_for_eof(connections: list[socket.socket], seconds: float) -> set[socket.socket]:
    """The sockets the server closed within `seconds` (each read to its end, or reset)."""
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + seconds
    while len(closed) < len(connections) and time.monotonic() < deadline:
        open_ = [c for c in connections if c not in closed]
        readable, _, _ = select.select(open_[:1000], [], [], 0.2)
        for connection in readable:
            try:
                if not connection.recv(65536):
                    closed.add(connection)
            except ConnectionError:
                closed.add(connection)
    return closed


def endpoint_labels(server: Server) -> tuple[set[str], int]:
    """The endpoint label values on /metrics, and its size."""
    text = httpx.get(server.url + "/metrics").text
    return set(re.findall(r'endpoint="([^"]*)"', text)), len(text)


def test_unknown_paths_share_one_metric_label_and_routes_keep_theirs(edge: Server) -> None:
    with httpx.Client(base_url=edge.url) as client:
        client.get("/no-such-path-warmup")
        labels_before, size_before = endpoint_labels(edge)
        for n in range(2000):
            assert client.get(f"/no-such-path-{n}").status_code == 404
        assert client.post("/destinations", json={}).status_code == 200
        assert client.get("/static_content/swagger-ui.css").status_code == 200
        client.put("/destinations/someone", content=b"x")
    labels, size = endpoint_labels(edge)
    assert labels - labels_before <= {"/destinations", "/static_content/{path}", "/destinations/{name}"}
    assert {"/_unknown", "/destinations", "/static_content/{path}", "/destinations/{name}", "/swap"} <= labels
    assert not any(label.startswith("/no-such-path") for label in labels)
    assert size - size_before < 20_000, f"/metrics grew from {size_before} to {size} bytes"


def server_listeners(server: Server) -> set[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket the server's processes hold."""
    return {(p.pid, c.laddr.ip, c.laddr.port) for p in processes(server)
            for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def supervisor_sockets(server: Server) -> list[str]:
    """The paths of the Unix sockets circus listens on in the supervisor."""
    return [c.laddr for c in psutil.Process(server.process.pid).net_connections(kind="unix")
            if c.laddr and "swaparoony-circus-" in c.laddr]


def test_the_only_tcp_port_is_the_http_one(edge: Server) -> None:
    ports = {port for _, _, port in server_listeners(edge)}
    assert ports == {urlparse(edge.url).port}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user (os.setuid)")
def test_only_the_servers_user_can_reach_the_supervisor(edge: Server) -> None:
    paths = set(supervisor_sockets(edge))
    assert len(paths) == 2, paths
    assert {Path(path).parent.stat().st_mode & 0o777 for path in paths} == {0o700}
    nobody = pwd.getpwnam("nobody")
    for path in paths:
        assert connect_as(None, path) == "connected"
        assert connect_as(nobody, path) == "refused"


def connect_as(user: pwd.struct_passwd | None, path: str) -> str:
    """Connect to a Unix socket from a forked child, as `user` if given; what happened."""
    child = os.fork()
    if child == 0:  # only system calls here, then _exit
        code = 2
        try:
            if user is not None:
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            with socket.socket(socket.AF_UNIX) as unix:
                unix.connect(path)
            code = 0
        except PermissionError:
            code = 13
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    return {0: "connected", 13: "refused"}.get(os.waitstatus_to_exitcode(status), "failed")


LIMITS = FramingLimits.of(Settings())
BODY = b"\x00" * 100_000  # no line breaks: read as head it would be one endless line


class Transport(asyncio.Transport):
    """What the protocol writes, for units that choose how its reads are split."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def echo_length(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that answers with the length of the body it read."""
    length, more = 0, True
    while more:
        message = await receive()
        length, more = length + len(message.get("body", b"")), message.get("more_body", False)
    body = str(length).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def feed(first: bytes, then: Sequence[bytes] = ()) -> Transport:
    """Hand FramingProtocol the read `first`, then, once it has answered, the reads `then`, one by one; wait for
    the second answer or the connection closing."""
    config = Config(app=echo_length, log_config=None, lifespan="off")
    config.load()
    protocol = FramingProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(first)
    await answered(transport, 1)
    for data in then:
        protocol.data_received(data)
    await answered(transport, 2)
    protocol.connection_lost(None)
    return transport


async def answered(transport: Transport, answers: int) -> None:
    for _ in range(500):  # at most 5 s
        if transport.closed or transport.written.count(b"HTTP/1.1 ") >= answers:
            return
        await asyncio.sleep(0.01)


def post(body: bytes) -> bytes:
    return b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_a_kept_connections_next_head_split_across_reads_is_measured_from_its_start() -> None:
    second = post(BODY)
    split = second.index(b"\r\n\r\n") + 2  # the blank line's CRLF in the next read, then the body
    transport = asyncio.run(feed(post(b"hi"), [second[:split], second[split:]]))
    assert transport.written.count(b"HTTP/1.1 200 OK") == 2 and transport.written.endswith(b"100000")


def test_a_kept_connections_next_head_is_bounded_line_by_line() -> None:
    transport = asyncio.run(feed(post(b"hi"), [head([b"X%d: b" % n for n in range(100)])]))
    assert b"HTTP/1.1 431 " in transport.written and transport.closed


def test_a_pipelined_head_is_measured_from_the_next_read_without_its_body() -> None:
    second = post(BODY)
    split = second.index(b"\r\n\r\n") + 2
    transport = asyncio.run(feed(post(b"hi") + second[:split], [second[split:]]))
    assert transport.written.count(b"HTTP/1.1 200 OK") == 2 and transport.written.endswith(b"100000")


def test_a_pipelined_head_is_still_bounded_in_total() -> None:
    transport = asyncio.run(feed(post(b"hi") + b"GET / HTTP/1.1\r\n", [b"X: b\r\n" * 1000] * 20))
    assert b"HTTP/1.1 431 " in transport.written and transport.closed


def test_the_meter_reads_only_up_to_the_blank_line() -> None:
    meter = HeadMeter(LIMITS)
    meter.take(b"\r\nGET / HTTP/1.1\r\nHost: x\r")
    meter.take(b"\n\r\n" + b"body" * 100_000)
    assert meter.done and meter.lines == 2 and meter.total == 2 + 17 + 10


def test_the_meter_refuses_as_soon_as_a_bound_is_crossed() -> None:
    with pytest.raises(RequestLineTooLong):
        HeadMeter(LIMITS).take(b"GET /" + b"a" * 8192)
    meter = HeadMeter(LIMITS)
    meter.take(b"GET / HTTP/1.1\r\nX: ")
    with pytest.raises(HeadersTooLarge, match="SWAPAROONY_MAX_HEADER_LINE_BYTES"):
        for _ in range(100):
            meter.take(b"b" * 1000)
