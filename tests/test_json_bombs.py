"""Hostile JSON to the KServe route, through a real server: refused at once, never parsed on the event loop.

Issue 25: eight clients sending 28 MB of `[[],[],...]` kept the API worker's event loop in `json.loads`
(4.5 s each, +958 MiB), and /livez and /readyz went silent for 13 and 17 s, past any probe's timeout.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import psutil
import pytest

from conftest import Server, encode, upload_image
from swaparoony.settings import Settings

UPLOAD = encode(upload_image())
PREDICT = "/v1/models/swaparoony-face-swap:predict"
MIB = 1024 * 1024
BOMB_BYTES = Settings().max_json_body_bytes - 64 * 1024
"""About 28 MB: the largest body the route takes (a 20 MiB photo in base64), so it passes the byte limit."""
ARRAY_BOMB = b"[" + b"[]," * (BOMB_BYTES // 3) + b"[]]"
OBJECT_BOMB = b'{"image": ' + ARRAY_BOMB + b"}"
NOT_A_PICTURE = b'{"image": "' + base64.b64encode(bytes(range(256)) * (BOMB_BYTES * 3 // 4 // 256 - 1)) + b'"}'
"""A well-formed body as large: parsed and decoded (off the event loop) before the decoder says it is no image."""
BODIES = [ARRAY_BOMB] * 8 + [OBJECT_BOMB, NOT_A_PICTURE]
PROBES = ("/livez", "/readyz")
PROBE_EVERY_S = 0.1
LONGEST_GAP_S = 1.0
"""A kubelet probe times out at 1 s by default; the probes must answer well within that during the storm."""
RSS_BOUND_MIB = ((len(BODIES) + 1) * BOMB_BYTES + 2 * BOMB_BYTES) / MIB + 64
"""The bodies are held whole before the route runs (admission reads each first; one more copy while its chunks
are joined), and the well-formed one is parsed and decoded (its string and bytes), about 380 MiB in all, plus
64 MiB for buffers and allocator arenas. Parsing the bombs (millions of lists) was +881 MiB."""


def answer(server: Server, body: bytes) -> httpx.Response:
    return httpx.post(server.url + PREDICT, content=body, headers={"Content-Type": "application/json"}, timeout=120)


def server_rss(server: Server) -> int:
    """Resident bytes of every process of the server (API workers, model service, decode workers)."""
    root = psutil.Process(server.process.pid)
    total = 0
    for process in (root, *root.children(recursive=True)):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass
class Watch:
    """Polls the probes every 100 ms and samples the server's memory until stopped, in threads of its own."""

    server: Server
    answered: dict[str, list[float]] = field(default_factory=lambda: {path: [] for path in PROBES})
    failures: list[str] = field(default_factory=list)
    peak_rss: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._probe, args=(path,), daemon=True) for path in PROBES]
        self.threads.append(threading.Thread(target=self._sample, daemon=True))

    def _probe(self, path: str) -> None:
        # A new connection each time, as a kubelet's probe makes; one client, so no TLS set-up costs the test's CPU.
        with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self.stop.wait(PROBE_EVERY_S):
                self._record(path, client)

    def _record(self, path: str, client: httpx.Client) -> None:
        try:
            status = client.get(self.server.url + path).status_code
        except httpx.HTTPError as exc:
            self.failures.append(f"{path}: {type(exc).__name__}")
            return
        if status == 200:
            self.answered[path].append(time.monotonic())
        else:
            self.failures.append(f"{path}: {status}")

    def _sample(self) -> None:
        while not self.stop.wait(0.05):
            self.peak_rss = max(self.peak_rss, server_rss(self.server))

    def __enter__(self) -> Watch:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.ended = time.monotonic()
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def longest_gap(self, path: str) -> float:
        """The longest time without an answer, counting from the start and up to the end of the watch."""
        times = [self.started, *self.answered[path], self.ended]
        return max(b - a for a, b in zip(times, times[1:]))


def test_json_bombs_leave_the_probes_answering_and_memory_bounded(server: Server) -> None:
    assert len(ARRAY_BOMB) > 27_000_000
    baseline = server_rss(server)
    with Watch(server) as watch, ThreadPoolExecutor(len(BODIES)) as pool, httpx.Client(timeout=120) as client:
        timed = list(pool.map(lambda body: _timed(lambda: _post(client, server, body)), BODIES))
    gaps = {path: watch.longest_gap(path) for path in PROBES}
    grown_mib = (watch.peak_rss - baseline) / MIB
    print(f"\n{len(BODIES)} bodies of {len(ARRAY_BOMB) / 1e6:.1f} MB: longest probe gap "
          + ", ".join(f"{path} {gap:.2f} s" for path, gap in gaps.items())
          + f"; answered in {min(s for s, _ in timed):.2f}-{max(s for s, _ in timed):.2f} s"
          + f"; server RSS +{grown_mib:.0f} MiB at the peak (bound {RSS_BOUND_MIB:.0f})")
    for _, response in timed:
        assert response.status_code == 400, response.text[:300]
        body = response.json()
        assert set(body) == {"success", "error", "detail"} and body["success"] is False
    assert timed[-1][1].json()["error"] == "Invalid image"  # NOT_A_PICTURE was parsed and decoded
    assert not watch.failures
    assert all(gap < LONGEST_GAP_S for gap in gaps.values()), gaps
    assert grown_mib < RSS_BOUND_MIB


def _post(client: httpx.Client, server: Server, body: bytes) -> httpx.Response:
    return client.post(server.url + PREDICT, content=body, headers={"Content-Type": "application/json"})


def _timed(send: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = send()
    return time.monotonic() - started, response


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"1", b"null", b"true", b"", b"   ", b'"' + b"x" * 20_000_000 + b'"'],
                         ids=["array", "string", "number", "null", "true", "empty", "blank", "20 MB string"])
def test_a_body_that_is_not_a_json_object_is_refused(server: Server, body: bytes) -> None:
    response = answer(server, body)
    assert response.status_code == 400
    reply = response.json()
    assert reply["success"] is False and reply["error"] == "Bad request" and "JSON object" in reply["detail"]


@pytest.mark.parametrize("body", [
    b'{"image": "' + base64.b64encode(UPLOAD) + b'", ' + b", ".join(b'"f%d": 1' % i for i in range(200)) + b"}",
    b'{"image": "' + base64.b64encode(UPLOAD) + b'", "more": [' + b"1," * 1_000_000 + b"1]}",
    b'{"image": "abc", "deep": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
], ids=["many members", "long array", "deep nesting"])
def test_a_structure_bomb_inside_an_object_is_refused_before_parsing(server: Server, body: bytes) -> None:
    response = answer(server, body)
    assert response.status_code == 400
    reply = response.json()
    assert reply["error"] == "Bad request" and "flat" in reply["detail"], reply


@pytest.mark.parametrize("wrap", [base64.encodebytes, lambda data: base64.encodebytes(data).replace(b"\n", b"\r\n")],
                         ids=["LF", "CRLF"])
def test_line_wrapped_base64_is_accepted(server: Server, wrap: Callable[[bytes], bytes]) -> None:
    """What the `base64` command prints: 76-character lines."""
    wrapped = wrap(UPLOAD).decode()
    assert "\n" in wrapped
    response = httpx.post(server.url + PREDICT, json={"image": wrapped, "source_face_id": 1, "destination_face_id": 1},
                          timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["success"] is True and len(response.json()["swapped_images"]) == 2


def test_a_few_extra_members_stay_accepted(server: Server) -> None:
    payload = {"image": base64.b64encode(UPLOAD).decode(), "source_face_id": 1, "destination_face_id": 1,
               "client": "booth-2.3", "options": {"mirror": [True, False]}}
    response = httpx.post(server.url + PREDICT, json=payload, timeout=120)
    assert response.status_code == 200, response.text[:300]
