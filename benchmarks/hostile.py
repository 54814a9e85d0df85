"""Hostile clients against a real server on 127.0.0.1: memory, stalls, a valid request's latency under attack.

    python benchmarks/hostile.py                              # every case, this checkout, generated models
    python benchmarks/hostile.py --quick                      # every case with small counts (a smoke run)
    python benchmarks/hostile.py --cases header_flood,mixed   # some cases (in the order given)
    python benchmarks/hostile.py --repo ../old                # another checkout of the service, for before/after

One server serves every case: generated models, and a gallery of two 1280x1280 portraits of two faces
(portrait_0.png, portrait_1.png; the valid probe swaps into these two, its `destinations`) beside nine
1024x1024 portraits of four faces (four_0.png .. four_8.png: eight of them at destination_face_id=0 and
pixel_boost=512 are the largest in-budget request, 512 swaps; nine are 576, over the budget).

Each case prints one line of figures (two for scan_bombs), medians where a measurement is repeated, with the
counts used. The script reports what the server does (statuses, closes, timings), never assumes a limit
exists: every wait has a timeout, every loop a bound in count and time, and the script stops by itself.

Cases (default: all, in this order):
  baseline          a valid /swap alone (always measured first: the other cases compare with it)
  sixteen_bit_pngs  peak server RSS (all processes) during concurrent 16-bit 6300x6300 PNG uploads
  scan_bombs        a valid /swap while scan-bomb JPEGs are in flight (a many-scan bomb; a slow one under the limit)
  huge_upload       the time to the answer (413) for a 200 MiB upload with Content-Length
  header_flood      raw connections sending endless `X<n>: b` header lines for up to N s: the answer, server RSS
  header_timeout    many sockets that never finish their headers: how many the server closes in time, its open fds
  slow_bodies       16 uploads (Content-Length 10 MB) trickling 1 byte every 2 s: a valid /swap meanwhile, their answers
  json_bombs        clients POSTing 28 MB `[[],[],...]` to the KServe route: the longest /livez and /readyz silence, RSS
  unknown_paths     GETs of distinct unknown paths: /metrics size and scrape time before and after
  largest_request   the largest in-budget request (8 portraits x 4 faces at pixel_boost 512): RSS, latency; 9 portraits
  mixed             64 valid clients alone, then beside 4 hostile clients: p50, p99, req/s and their ratios
  disconnects       clients that close mid-upload: ERROR/Traceback vs WARNING lines in the server log, 5xx on /metrics
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import re
import resource
import selectors
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import cv2
import httpx
import psutil
from PIL import Image

from _fixtures import REPO, Server, draw_faces, gallery, percentiles, start_server, stop_server, upload, write_models
from load import server_rss_mib

sys.path.insert(0, str(REPO / "tests"))
from hostile_files import gradient_jpeg, progressive_jpeg, scan_bomb, sixteen_bit_png  # noqa: E402
from test_body_limit import file_part_head, stream_upload  # noqa: E402

MIB = 1024 * 1024
PREDICT = "/v1/models/swaparoony-face-swap:predict"
PROBE_DESTINATIONS = "portrait_0.png,portrait_1.png"
"""The valid probe's destinations: the two-portrait gallery the earlier figures were measured with."""
FOUR_FACES = [f"four_{i}.png" for i in range(9)]
FOUR_SIDE = 1024
FOUR_CENTRES = [(256, 256), (768, 256), (256, 768), (768, 768)]
"""Multiples of 32 x 1024/640 in a 1024x1024 portrait: where the generated detector finds a face."""
LARGEST = {"destinations": ",".join(FOUR_FACES[:8]), "destination_face_id": "0", "pixel_boost": "512"}
"""8 portraits x 4 faces x 16 tiles: 512 swaps, the default SWAPAROONY_MAX_SWAPS_PER_REQUEST."""
OVER_BUDGET = {**LARGEST, "destinations": ",".join(FOUR_FACES)}
"""9 portraits: 576 swaps."""
JSON_BOMB_BYTES = -(-20 * MIB * 4 // 3)
"""About 28 MB: a 20 MiB photo in base64, the largest JSON body the KServe route is meant to take."""
ARRAY_BOMB = b"[" + b"[]," * (JSON_BOMB_BYTES // 3) + b"[]]"
OBJECT_BOMB = b'{"image": ' + ARRAY_BOMB + b"}"
MARGIN_S = 5.0
"""Slack on top of a server deadline before a connection counts as not closed in time."""


@dataclass(frozen=True)
class Plan:
    """The counts and durations of every case; QUICK is the smoke-run version."""

    warmups: int = 5
    alone: int = 10
    pngs: int = 6
    bomb_copies: int = 6
    bomb_runs: int = 3
    huge_runs: int = 5
    flood_connections: int = 2
    flood_s: float = 15.0
    flood_rss_cap_mib: float = 4096.0
    timeout_sockets: int = 1000
    trickles: int = 16
    trickle_margin_s: float = 25.0
    trickle_probes: int = 10
    json_clients: int = 8
    json_s: float = 10.0
    unknown_gets: int = 20_000
    unknown_threads: int = 4
    unknown_limit_s: float = 600.0
    scrapes: int = 5
    largest_runs: int = 3
    mixed_clients: int = 64
    mixed_total: int = 400
    mixed_limit_s: float = 600.0
    disconnects: int = 50


QUICK = Plan(warmups=2, alone=5, pngs=2, bomb_copies=2, bomb_runs=1, huge_runs=2, flood_s=3.0, timeout_sockets=200,
             trickle_margin_s=8.0, trickle_probes=3, json_clients=4, json_s=4.0, unknown_gets=2000, unknown_limit_s=120.0,
             scrapes=3, largest_runs=1, mixed_clients=16, mixed_total=48, mixed_limit_s=180.0, disconnects=10)


@dataclass
class Bench:
    """The running server and what every case shares."""

    server: Server
    plan: Plan
    valid: bytes
    alone_s: float = 0.0

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def connect(self, timeout: float = 10) -> socket.socket:
        address = urlparse(self.url)
        return socket.create_connection((address.hostname, address.port), timeout=timeout)


# --- measuring -------------------------------------------------------------------------------------------------

def post(url: str, image: bytes, filename: str = "me.jpg", content_type: str = "image/jpeg", timeout: float = 600,
         **fields: str) -> tuple[int, float]:
    """A /swap of `image` into the probe's destinations (unless `fields` says otherwise): (status, seconds); 0: no
    HTTP answer (a timeout or a dropped connection)."""
    started = time.perf_counter()
    try:
        status = httpx.post(url + "/swap", files={"image": (filename, image, content_type)},
                            data={"destinations": PROBE_DESTINATIONS, **fields}, timeout=timeout).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.perf_counter() - started


def post_json(url: str, body: bytes, timeout: float = 120) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        status = httpx.post(url + PREDICT, content=body, headers={"Content-Type": "application/json"},
                            timeout=timeout).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.perf_counter() - started


class RssSampler:
    """The server's total resident memory, sampled every 20 ms in a thread; `peak` in MiB."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, server_rss_mib(self.pid))
            except psutil.Error:
                pass
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def server_fds(pid: int) -> int:
    """File descriptors open in the server and all its workers."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.num_fds()
        except psutil.Error:
            continue
    return total


def status_of(data: bytes) -> int:
    found = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(found.group(1)) if found else 0


def read_answer(connection: socket.socket, seconds: float) -> tuple[int, bool]:
    """The status of what the server sent (0: nothing), and whether it then closed the connection, within `seconds`."""
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            break
        except OSError:
            return status_of(received), True
        if not chunk:
            return status_of(received), True
        received += chunk
    return status_of(received), False


def scrape(url: str) -> tuple[str, float]:
    started = time.perf_counter()
    text = httpx.get(url + "/metrics", timeout=120).text
    return text, time.perf_counter() - started


def answered_by_status(text: str) -> dict[str, Counter[int]]:
    """For each counter family (`*_total`) labelled by HTTP status on /metrics: its count per status."""
    found: dict[str, Counter[int]] = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z_:][\w:]*)\{(.*)\} (\S+)$", line)
        if not match or not match.group(1).endswith("_total"):
            continue
        status = re.search(r'(?:http_response_code|status)="(\d{3})"', match.group(2))
        if status:
            found.setdefault(match.group(1), Counter())[int(status.group(1))] += int(float(match.group(3)))
    return found


def status_delta(before: str, after: str, wanted: Callable[[int], bool]) -> dict[str, int]:
    """Per family, how many more answers with a wanted status `after` has than `before`."""
    old, new = answered_by_status(before), answered_by_status(after)
    return {family: sum(n for s, n in counts.items() if wanted(s)) - sum(n for s, n in old.get(family, {}).items()
                                                                        if wanted(s))
            for family, counts in new.items()}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def tally(statuses: list[int]) -> str:
    """{200: 3, 0: 1} with 0 spelled as no answer."""
    counts = Counter(statuses)
    return "{" + ", ".join(f"{s if s else 'no answer'}: {n}" for s, n in sorted(counts.items())) + "}"


def raise_own_file_limit(needed: int) -> int:
    """Raise this process's open-file limit toward `needed`; what it now is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft if soft != resource.RLIM_INFINITY else needed


def settle(bench: Bench, seconds: float = 60) -> None:
    """Wait (bounded) until the server answers /livez again after a case."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and bench.server.process.poll() is None:
        try:
            if httpx.get(bench.url + "/livez", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


# --- hostile files -----------------------------------------------------------------------------------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunky_png(total: int = 20 * MIB - 1024) -> bytes:
    """A valid 64x64 PNG of `total` bytes: its header, then ~1.7 M empty private ancillary chunks (12 bytes each,
    each with a right CRC) before the image data; a decoder walks every one."""
    header = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
    tail = png_chunk(b"IDAT", zlib.compress(b"".join(b"\0" + bytes(64 * 3) for _ in range(64)))) + png_chunk(b"IEND", b"")
    empty = png_chunk(b"prVt", b"")
    return header + empty * ((total - len(header) - len(tail)) // len(empty)) + tail


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def animated_webp(side: int = 2000, frames: int = 1000) -> bytes:
    """An animated WebP of `frames` full-canvas side x side frames, alternating two flat colours: ~220 KB on the
    wire, 16 MB of pixels a frame for a decoder that renders them all (Pillow: ~18 ms a frame)."""
    u24 = lambda value: struct.pack("<I", value)[:3]  # noqa: E731
    bitstreams = []
    for colour in ((200, 60, 30), (30, 60, 200)):
        buffer = io.BytesIO()
        Image.new("RGB", (side, side), colour).save(buffer, "WEBP", lossless=True)
        data = buffer.getvalue()
        assert data[12:16] == b"VP8L", data[:32]
        bitstreams.append(riff_chunk(b"VP8L", data[20 : 20 + struct.unpack("<I", data[16:20])[0]]))
    canvas = u24(side - 1) + u24(side - 1)
    body = (b"WEBP" + riff_chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + canvas) + riff_chunk(b"ANIM", bytes(6))
            + b"".join(riff_chunk(b"ANMF", u24(0) + u24(0) + canvas + u24(20) + b"\x02" + bitstreams[i % 2])
                       for i in range(frames)))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def four_face_gallery(directory: Path) -> None:
    """FOUR_FACES beside the probe's portraits: 1024x1024, four faces each."""
    for name in FOUR_FACES:
        cv2.imwrite(str(directory / name), draw_faces((FOUR_SIDE, FOUR_SIDE), FOUR_CENTRES, scale=FOUR_SIDE / 640))


# --- the cases -------------------------------------------------------------------------------------------------

CASES: dict[str, Callable[[Bench], None]] = {}


def case(function: Callable[[Bench], None]) -> Callable[[Bench], None]:
    CASES[function.__name__] = function
    return function


@case
def baseline(bench: Bench) -> None:
    plan = bench.plan
    for _ in range(plan.warmups):
        post(bench.url, bench.valid)
    runs = [post(bench.url, bench.valid) for _ in range(plan.alone)]
    bench.alone_s = statistics.median(t for _, t in runs)
    print(f"baseline: valid /swap alone ({PROBE_DESTINATIONS}): median {ms(bench.alone_s)} of {plan.alone} "
          f"(after {plan.warmups} warm-ups), statuses {tally([s for s, _ in runs])}")


@case
def sixteen_bit_pngs(bench: Bench) -> None:
    count = bench.plan.pngs
    png = sixteen_bit_png((6300, 6300))
    base = server_rss_mib(bench.pid)
    with RssSampler(bench.pid) as rss, ThreadPoolExecutor(count) as pool:
        statuses = [s for s, _ in pool.map(lambda _: post(bench.url, png), range(count))]  # as me.jpg, as before
    print(f"sixteen_bit_pngs: {count} concurrent 16-bit 6300x6300 PNGs ({len(png):,} bytes each): statuses {statuses}, "
          f"server RSS {base:.0f} MiB before, peak {rss.peak:.0f} MiB (+{rss.peak - base:.0f})")


def under_attack(url: str, attack: bytes, valid: bytes, count: int) -> tuple[float, list[int], float, int]:
    """One valid swap sent just after `count` copies of an attack: its latency, the attacks' statuses and longest
    time, the valid swap's status."""
    with ThreadPoolExecutor(count + 1) as pool:
        attacks = [pool.submit(post, url, attack) for _ in range(count)]
        time.sleep(0.5)  # benchmark only: let the attacks reach the decoder first
        status, took = post(url, valid)
        results = [a.result() for a in attacks]
    return took, [s for s, _ in results], max(t for _, t in results), status


@case
def scan_bombs(bench: Bench) -> None:
    plan = bench.plan
    bombs = {
        "many-scan bomb (6000x6000 gradient, 7,000 copies of a 23-byte scan)": scan_bomb(gradient_jpeg(6000), 7000),
        "slow bomb under the scan limit (3000x3000, 54 copies of its largest scan)":
            scan_bomb(progressive_jpeg((3000, 3000)), 54, largest=True),
    }
    for name, bomb in bombs.items():
        runs = [under_attack(bench.url, bomb, bench.valid, plan.bomb_copies) for _ in range(plan.bomb_runs)]
        print(f"scan_bombs: {name}, {len(bomb):,} bytes, {plan.bomb_copies} in flight: valid /swap median "
              f"{ms(statistics.median(r[0] for r in runs))} of {plan.bomb_runs} (alone {ms(bench.alone_s)}, statuses "
              f"{tally([r[3] for r in runs])}); bomb statuses {runs[0][1]}, longest bomb {max(r[2] for r in runs):.1f} s")


@case
def huge_upload(bench: Bench) -> None:
    times, reply, sent = [], "", 0
    for _ in range(bench.plan.huge_runs):
        reply, seconds, sent = stream_upload(bench.server, "/swap", file_part_head(), 200 * MIB, chunked=False)
        times.append(seconds)
    print(f"huge_upload: 200 MiB upload: answered {reply.split(chr(13))[0]!r}, median {ms(statistics.median(times))} "
          f"of {len(times)}, {sent / MIB:.0f} MiB sent before the answer (last run)")


def flood_headers(bench: Bench, block: bytes, seconds: float, stop: threading.Event) -> dict[str, object]:
    """Send a POST's request line, then header lines from `block` over and over, as fast as the server reads them,
    until it answers, stops reading for 10 s, `seconds` pass or `stop` is set; what happened."""
    started = time.monotonic()
    sent, why, view = 0, "still sending", memoryview(block)
    with bench.connect() as connection:
        connection.sendall(b"POST /swap HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        stalled_since = None
        while True:
            now = time.monotonic()
            if now - started > seconds:
                break
            if stop.is_set():
                why = "stopped at the RSS cap"
                break
            readable, writable = select_one(connection, 0.5)
            if readable:
                why = "answered"
                break
            if not writable:
                stalled_since = stalled_since or now
                if now - stalled_since > 10:
                    why = "the server stopped reading for 10 s"
                    break
                continue
            stalled_since = None
            try:
                offset = sent % len(block)
                connection.settimeout(5)
                sent += connection.send(view[offset : offset + 256 * 1024])
            except TimeoutError:
                continue
            except OSError as exc:
                why = f"send failed ({type(exc).__name__})"
                break
        flooded_s = time.monotonic() - started
        status, closed = read_answer(connection, 5)
    return {"status": status, "closed": closed, "sent": sent, "seconds": flooded_s, "why": why}


def select_one(connection: socket.socket, timeout: float) -> tuple[bool, bool]:
    """Whether the connection is readable, writable, within `timeout` (selectors: any descriptor number)."""
    with selectors.DefaultSelector() as selector:
        selector.register(connection, selectors.EVENT_READ | selectors.EVENT_WRITE)
        events = selector.select(timeout)
    mask = events[0][1] if events else 0
    return bool(mask & selectors.EVENT_READ), bool(mask & selectors.EVENT_WRITE)


@case
def header_flood(bench: Bench) -> None:
    plan = bench.plan
    block = b"".join(b"X%d: b\r\n" % n for n in range(400_000))  # ~4.3 MB of distinct names, sent over and over
    base = server_rss_mib(bench.pid)
    stop = threading.Event()
    with RssSampler(bench.pid) as rss:
        def watch() -> None:
            while not stop.wait(0.05):
                if rss.peak - base > plan.flood_rss_cap_mib:
                    stop.set()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        with ThreadPoolExecutor(plan.flood_connections) as pool:
            results = list(pool.map(lambda _: flood_headers(bench, block, plan.flood_s, stop),
                                    range(plan.flood_connections)))
        stop.set()
        watcher.join()
    after = server_rss_mib(bench.pid)
    try:
        livez = httpx.get(bench.url + "/livez", timeout=10).status_code
    except httpx.HTTPError:
        livez = 0
    answers = "; ".join(
        f"{r['status'] or 'no answer'}{' and closed' if r['closed'] else ', left open'} ({r['why']} at "
        f"{r['seconds']:.2f} s, {r['sent'] / MIB:,.1f} MiB of headers sent)" for r in results)
    print(f"header_flood: {plan.flood_connections} connections, up to {plan.flood_s:.0f} s each (RSS cap "
          f"+{plan.flood_rss_cap_mib:.0f} MiB): {answers}; server RSS {base:.0f} MiB before, peak {rss.peak:.0f} MiB "
          f"(+{rss.peak - base:.0f}), {after:.0f} MiB after; /livez then {livez or 'no answer'}")


@case
def header_timeout(bench: Bench) -> None:
    count = bench.plan.timeout_sockets
    limit = raise_own_file_limit(count + 256)
    count = min(count, limit - 256)
    deadline_s = float(os.environ.get("SWAPAROONY_HEADER_TIMEOUT_S", 10))
    fds_before = server_fds(bench.pid)
    sockets: list[socket.socket] = []
    replies: dict[socket.socket, bytes] = {}
    closed_at: dict[socket.socket, float] = {}
    try:
        started = time.monotonic()
        for _ in range(count):
            try:
                connection = bench.connect()
            except OSError:
                break
            connection.setblocking(False)
            try:
                connection.send(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never: finished\r\n")
            except OSError:
                pass
            sockets.append(connection)
            replies[connection] = b""
        opened_s = time.monotonic() - started
        fds_held = server_fds(bench.pid)
        fds_peak, next_count = fds_held, time.monotonic() + 0.5
        try:
            during = httpx.get(bench.url + "/livez", timeout=10).status_code
        except httpx.HTTPError:
            during = 0
        window = deadline_s + MARGIN_S
        with selectors.DefaultSelector() as selector:
            for connection in sockets:
                selector.register(connection, selectors.EVENT_READ)
            while len(closed_at) < len(sockets) and time.monotonic() - started < window:
                if time.monotonic() > next_count:
                    fds_peak, next_count = max(fds_peak, server_fds(bench.pid)), time.monotonic() + 0.5
                for key, _ in selector.select(timeout=0.2):
                    connection = key.fileobj  # type: ignore[assignment]
                    try:
                        chunk = connection.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if chunk:
                        replies[connection] += chunk
                        continue
                    closed_at[connection] = time.monotonic() - started
                    selector.unregister(connection)
        fds_window_end = server_fds(bench.pid)
    finally:
        for connection in sockets:
            connection.close()
    time.sleep(1)
    fds_after = server_fds(bench.pid)
    times = sorted(closed_at.values())
    when = (f", closed at median {statistics.median(times):.1f} s (first {times[0]:.1f}, last {times[-1]:.1f})"
            if times else "")
    print(f"header_timeout: {len(sockets)} sockets that never finish their headers (opened in {opened_s:.1f} s): "
          f"{len(closed_at)} closed by the server within {window:.0f} s (header_timeout {deadline_s:g} s + "
          f"{MARGIN_S:g}){when}, answers {tally([status_of(replies[c]) for c in closed_at])}; /livez meanwhile "
          f"{during or 'no answer'}; server open fds {fds_before} before, peak {fds_peak} with them open, "
          f"{fds_window_end} at the window's end, {fds_after} once the client closed them")


@case
def slow_bodies(bench: Bench) -> None:
    plan = bench.plan
    body_deadline_s = float(os.environ.get("SWAPAROONY_BODY_TIMEOUT_S", 20))
    hold_s = body_deadline_s + plan.trickle_margin_s
    declared = 10_000_000
    trickle = file_part_head() + b"\0" * 64  # the body's first bytes, sent one at a time
    head = (f"POST /swap HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    sockets = []
    for _ in range(plan.trickles):
        connection = bench.connect()
        connection.sendall(head)
        connection.setblocking(False)
        sockets.append(connection)
    answers: dict[socket.socket, tuple[int, float]] = {}
    started = time.monotonic()

    def run_trickles() -> None:
        sent = 0
        next_byte = started
        with selectors.DefaultSelector() as selector:
            for connection in sockets:
                selector.register(connection, selectors.EVENT_READ)
            while len(answers) < len(sockets) and time.monotonic() - started < hold_s:
                if time.monotonic() >= next_byte and sent < len(trickle):
                    for connection in sockets:
                        if connection not in answers:
                            try:
                                connection.send(trickle[sent : sent + 1])
                            except BlockingIOError:
                                pass
                            except OSError:
                                answers[connection] = (0, time.monotonic() - started)
                                selector.unregister(connection)
                    sent += 1
                    next_byte += 2.0
                wait = max(0.01, min(next_byte, started + hold_s) - time.monotonic())
                for key, _ in selector.select(timeout=wait):
                    connection = key.fileobj  # type: ignore[assignment]
                    try:
                        chunk = connection.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    answers[connection] = (status_of(chunk), time.monotonic() - started)
                    selector.unregister(connection)
        for connection in sockets:  # held no longer: a probe still waiting behind them can go on
            connection.close()

    trickler = threading.Thread(target=run_trickles, daemon=True)
    try:
        trickler.start()
        time.sleep(1.0)  # the trickles hold their requests
        probes = []
        while len(probes) < plan.trickle_probes and time.monotonic() - started < hold_s:
            probes.append(post(bench.url, bench.valid, timeout=hold_s + 30))
        probes_done = time.monotonic() - started
        trickler.join(hold_s + 5)
    finally:
        for connection in sockets:
            connection.close()
    latencies = [t for _, t in probes]
    times = sorted(t for _, t in answers.values())
    when = f" at median {statistics.median(times):.1f} s (first {times[0]:.1f}, last {times[-1]:.1f})" if times else ""
    print(f"slow_bodies: {len(sockets)} uploads declaring {declared:,} bytes, 1 byte every 2 s: valid /swap meanwhile "
          f"median {ms(statistics.median(latencies))}, max {ms(max(latencies))} of {len(probes)} (alone "
          f"{ms(bench.alone_s)}, statuses {tally([s for s, _ in probes])}, done {probes_done:.1f} s in); trickles "
          f"answered {tally([s for s, _ in answers.values()])}{when} (body_timeout {body_deadline_s:g} s), "
          f"{len(sockets) - len(answers)} unanswered within {hold_s:.0f} s")


def attack(name: str, call: Callable[[], tuple[int, float]], seconds: float | None, stop: object,
           queue: object) -> None:
    """A hostile client's loop, in a process of its own: `call` again and again until stopped or `seconds` pass."""
    until = time.monotonic() + seconds if seconds else float("inf")
    while not stop.is_set() and time.monotonic() < until:  # type: ignore[attr-defined]
        queue.put((name, *call()))  # type: ignore[attr-defined]


class Attackers:
    """Hostile clients, each a forked process repeating its call (until stopped, or for `seconds`), so their Python
    work (building and sending bodies of megabytes) never holds up this process's measuring clients and threads.
    Start it before any thread of this process: a fork copies only the thread that forks."""

    def __init__(self, calls: list[tuple[str, Callable[[], tuple[int, float]]]], seconds: float | None = None) -> None:
        context = multiprocessing.get_context("fork")
        self.stop, self.queue = context.Event(), context.Queue()
        self.processes = [context.Process(target=attack, args=(name, call, seconds, self.stop, self.queue), daemon=True)
                          for name, call in calls]
        self.answered: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in calls}

    def __enter__(self) -> Attackers:
        for process in self.processes:
            process.start()
        return self

    def _drain(self) -> None:
        while True:
            try:
                name, status, seconds = self.queue.get_nowait()
            except Exception:  # noqa: BLE001 (queue.Empty, from the multiprocessing module's queue)
                return
            self.answered[name].append((status, seconds))

    def join(self, seconds: float) -> None:
        """Wait up to `seconds` for the clients to finish by themselves, collecting their answers meanwhile."""
        deadline = time.monotonic() + seconds
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            self._drain()
            time.sleep(0.05)
        self._drain()

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.join(150)  # each finishes the request in flight (their timeouts are 120 s)
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join(5)
        self._drain()

    def summary(self) -> str:
        return ", ".join(f"{name} {tally([s for s, _ in runs])} median {statistics.median(t for _, t in runs):.2f} s"
                         if runs else f"{name} none answered" for name, runs in self.answered.items())


class ProbeWatch:
    """Polls /livez and /readyz every 100 ms, each in a thread, until stopped; the answered times per path."""

    PATHS = ("/livez", "/readyz")

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered: dict[str, list[float]] = {path: [] for path in self.PATHS}
        self.failed: Counter[str] = Counter()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._poll, args=(path,), daemon=True) for path in self.PATHS]

    def _poll(self, path: str) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.wait(0.1):
                try:
                    client.get(self.url + path)
                    self.answered[path].append(time.monotonic())
                except httpx.HTTPError:
                    self.failed[path] += 1

    def __enter__(self) -> ProbeWatch:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        self.ended = time.monotonic()

    def longest_gap(self, path: str) -> float:
        times = [self.started, *self.answered[path], self.ended]
        return max(b - a for a, b in zip(times, times[1:]))


@case
def json_bombs(bench: Bench) -> None:
    plan = bench.plan
    base = server_rss_mib(bench.pid)
    clients = [("array", lambda: post_json(bench.url, ARRAY_BOMB))] * (plan.json_clients - 1)
    clients.append(("object", lambda: post_json(bench.url, OBJECT_BOMB)))
    with Attackers(clients, plan.json_s) as bombs, RssSampler(bench.pid) as rss, ProbeWatch(bench.url) as watch:
        bombs.join(plan.json_s + 150)
    results = [r for runs in bombs.answered.values() for r in runs]
    polls = sum(len(v) for v in watch.answered.values())
    print(f"json_bombs: {plan.json_clients} clients x {len(ARRAY_BOMB) / 1e6:.1f} MB `[[],[],...]` (one of them "
          f'{{"image": [[],...]}}) for {plan.json_s:.0f} s: {len(results)} bombs, statuses '
          f"{tally([s for s, _ in results])}, median {statistics.median(t for _, t in results):.2f} s each; longest gap "
          f"between answered polls /livez {watch.longest_gap('/livez'):.2f} s, /readyz "
          f"{watch.longest_gap('/readyz'):.2f} s "
          f"(every 100 ms, {polls} answered, failed {dict(watch.failed) or 0}); server RSS {base:.0f} MiB before, "
          f"peak {rss.peak:.0f} MiB (+{rss.peak - base:.0f})")


def metrics_figures(bench: Bench) -> str:
    """/metrics: its size in bytes, the median time of plan.scrapes scrapes, its distinct endpoint labels."""
    scrapes = []
    for _ in range(bench.plan.scrapes):
        started = time.perf_counter()
        try:
            scrapes.append(scrape(bench.url))
        except httpx.HTTPError as exc:
            return f"no answer ({type(exc).__name__} after {time.perf_counter() - started:.0f} s)"
    text = scrapes[-1][0]
    labels = len(set(re.findall(r'endpoint="([^"]*)"', text)))
    return (f"{len(text.encode()):,} bytes, scrape median {ms(statistics.median(t for _, t in scrapes))} of "
            f"{len(scrapes)}, {labels} endpoint labels")


@case
def unknown_paths(bench: Bench) -> None:
    plan = bench.plan
    httpx.get(bench.url + "/no-such-path-warm-up", timeout=10)  # the unknown-path label, if any, exists before
    before = metrics_figures(bench)
    until = time.monotonic() + plan.unknown_limit_s
    started = time.monotonic()

    def worker(offset: int) -> Counter[int]:
        statuses: Counter[int] = Counter()
        with httpx.Client(base_url=bench.url, timeout=30) as client:
            for n in range(offset, plan.unknown_gets, plan.unknown_threads):
                if time.monotonic() > until:
                    break
                try:
                    statuses[client.get(f"/no-such-path-{n}").status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1
        return statuses

    with ThreadPoolExecutor(plan.unknown_threads) as pool:
        statuses = sum(pool.map(worker, range(plan.unknown_threads)), Counter())
    elapsed = time.monotonic() - started
    after = metrics_figures(bench)
    sent = sum(statuses.values())
    print(f"unknown_paths: {sent:,} GETs of distinct unknown paths ({plan.unknown_threads} keep-alive clients, "
          f"{elapsed:.1f} s, statuses {tally(list(statuses.elements()))}): /metrics before {before}; after {after}")


def swap_json(url: str, fields: dict[str, str], valid: bytes, timeout: float = 600) -> tuple[int, float, str, int]:
    """A /swap with these fields: status, seconds, the error code (if any), the answer's size."""
    started = time.perf_counter()
    try:
        response = httpx.post(url + "/swap", files={"image": ("me.jpg", valid, "image/jpeg")}, data=fields,
                              timeout=timeout)
    except httpx.HTTPError as exc:
        return 0, time.perf_counter() - started, type(exc).__name__, 0
    took = time.perf_counter() - started
    code = ""
    if response.status_code != 200:
        try:
            code = str(response.json().get("code", ""))
        except (json.JSONDecodeError, AttributeError):
            code = response.text[:60]
    return response.status_code, took, code, len(response.content)


@case
def largest_request(bench: Bench) -> None:
    runs = bench.plan.largest_runs
    base = server_rss_mib(bench.pid)
    results, peak = [], 0.0
    for _ in range(runs):
        with RssSampler(bench.pid) as rss:
            results.append(swap_json(bench.url, LARGEST, bench.valid))
        peak = max(peak, rss.peak)
    over = [swap_json(bench.url, OVER_BUDGET, bench.valid) for _ in range(max(runs, 3))]
    over_codes = sorted({r[2] for r in over if r[2]})
    print(f"largest_request: 8 portraits x 4 faces at 1024x1024, destination_face_id=0, pixel_boost=512 (512 swaps): "
          f"statuses {tally([r[0] for r in results])}, median {ms(statistics.median(r[1] for r in results))} of {runs}, "
          f"answer {results[-1][3] / MIB:.1f} MiB; server RSS {base:.0f} MiB before, peak {peak:.0f} MiB "
          f"(+{peak - base:.0f}); 9 portraits (576 swaps): statuses {tally([r[0] for r in over])}"
          f"{' ' + ', '.join(over_codes) if over_codes else ''} in median {ms(statistics.median(r[1] for r in over))} "
          f"of {len(over)}")


async def valid_clients(url: str, image: bytes, clients: int, total: int,
                        limit_s: float) -> tuple[list[float], list[int], float]:
    """`clients` concurrent clients sending valid swaps until `total` are sent (or `limit_s` passes): the latencies
    of the 200s, the statuses of the rest, the elapsed time."""
    latencies: list[float] = []
    failures: list[int] = []
    remaining = [total]
    until = time.monotonic() + limit_s

    async def loop(client: httpx.AsyncClient) -> None:
        while remaining[0] > 0 and time.monotonic() < until:
            remaining[0] -= 1
            started = time.perf_counter()
            try:
                response = await client.post(url + "/swap", files={"image": ("me.jpg", image, "image/jpeg")},
                                             data={"destinations": PROBE_DESTINATIONS})
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failures.append(status)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=limit_s, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(loop(client) for _ in range(clients)))
        return latencies, failures, time.monotonic() - started


@case
def mixed(bench: Bench) -> None:
    plan = bench.plan
    png, webp = chunky_png(), animated_webp()
    hostile: dict[str, Callable[[], tuple[int, float]]] = {
        "json_bomb": lambda: post_json(bench.url, ARRAY_BOMB),
        "chunky_png": lambda: post(bench.url, png, "chunks.png", "image/png", timeout=120),
        "animated_webp": lambda: post(bench.url, webp, "frames.webp", "image/webp", timeout=120),
        "over_budget": lambda: post(bench.url, bench.valid, timeout=120, **OVER_BUDGET),
    }

    def run() -> tuple[dict[str, float], list[int], int]:
        latencies, failures, elapsed = asyncio.run(valid_clients(bench.url, bench.valid, plan.mixed_clients,
                                                                 plan.mixed_total, plan.mixed_limit_s))
        figures = percentiles(latencies) if latencies else {"p50": float("nan"), "p99": float("nan")}
        return {**figures, "rps": len(latencies) / elapsed}, failures, len(latencies)

    alone, alone_failures, alone_ok = run()
    with Attackers(list(hostile.items())) as attackers:
        time.sleep(0.5)  # the attacks are in flight before the valid clients start
        beside, beside_failures, beside_ok = run()
    line = lambda f, ok, failed: (f"p50 {ms(f['p50'])}, p99 {ms(f['p99'])}, {f['rps']:.1f} req/s ({ok} ok"  # noqa: E731
                                  + (f", failed {tally(failed)})" if failed else ")"))
    print(f"mixed: {plan.mixed_clients} valid clients, {plan.mixed_total} /swap requests: alone "
          f"{line(alone, alone_ok, alone_failures)}; beside 4 hostile clients {line(beside, beside_ok, beside_failures)}; "
          f"ratio p50 x{beside['p50'] / alone['p50']:.2f}, p99 x{beside['p99'] / alone['p99']:.2f}, req/s "
          f"x{beside['rps'] / alone['rps']:.2f}; hostile ({len(png) / MIB:.1f} MiB PNG of "
          f"{(len(png) - 100) // 12:,} empty chunks, {len(webp) / 1e3:.0f} KB WebP of 1,000 2000x2000 frames): "
          f"{attackers.summary()}")


def log_lines(text: str) -> tuple[int, int, int]:
    """Lines in a stretch of server log: ERROR or CRITICAL ones, Traceback headers, WARNING ones."""
    lines = text.splitlines()
    errors = sum(1 for line in lines if re.search(r"\bERROR\b|\bCRITICAL\b", line))
    tracebacks = sum(1 for line in lines if line.startswith("Traceback") or "Traceback (most recent call last)" in line)
    warnings = sum(1 for line in lines if re.search(r"\bWARNING\b|\bWARN\b", line))
    return errors, tracebacks, warnings


@case
def disconnects(bench: Bench) -> None:
    count = bench.plan.disconnects
    body = file_part_head() + bench.valid + b"\r\n--b--\r\n"
    head = (f"POST /swap HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    log_from = len(bench.server.log())
    metrics_before, _ = scrape(bench.url)

    def one(index: int) -> None:
        with bench.connect() as connection:
            connection.sendall(head + body[: len(body) // 2])
            time.sleep(0.3)  # the server is reading the body
            if index % 2:  # half of them reset the connection rather than close it
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(one, range(count)))
    quiet_until, last_size, deadline = time.monotonic() + 1.5, -1, time.monotonic() + 15
    while time.monotonic() < deadline:  # until the log stops growing for 1.5 s
        size = len(bench.server.log())
        if size != last_size:
            last_size, quiet_until = size, time.monotonic() + 1.5
        elif time.monotonic() > quiet_until:
            break
        time.sleep(0.1)
    metrics_after, _ = scrape(bench.url)
    errors, tracebacks, warnings = log_lines(bench.server.log()[log_from:])
    counted = lambda wanted: ", ".join(  # noqa: E731 (each family that counts answers by status, on its own)
        f"{family} +{n}" for family, n in sorted(status_delta(metrics_before, metrics_after, wanted).items())) or "none"
    print(f"disconnects: {count} clients closing mid-upload (half of them with a reset): server log {errors} "
          f"ERROR/CRITICAL lines, {tracebacks} tracebacks, {warnings} WARNING lines; /metrics 5xx: "
          f"{counted(lambda s: 500 <= s < 600)}; "
          f"499: {counted(lambda s: s == 499)}")


# --- running ---------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to serve (default: this one)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated cases to run, in this order (default: all); baseline always runs first")
    parser.add_argument("--quick", action="store_true", help="small counts and short durations: a smoke run")
    parser.add_argument("--runs", type=int, help="scan_bombs runs per bomb (default 3, 1 with --quick)")
    args = parser.parse_args()
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    names = ["baseline", *[name for name in names if name != "baseline"]]
    plan = QUICK if args.quick else Plan()
    if args.runs:
        plan = replace(plan, bomb_runs=args.runs)

    work = Path(tempfile.mkdtemp(prefix="swaparoony-hostile-"))
    models, destinations = write_models(work / "models"), gallery(work / "destinations")
    four_face_gallery(destinations)
    server = start_server(work, {"SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(destinations)},
                          cwd=args.repo.resolve())
    failed = []
    try:
        bench = Bench(server, plan, upload())
        print(f"serving {args.repo.resolve()} at {server.url}{' (--quick)' if args.quick else ''}; cases: "
              f"{', '.join(names)}", flush=True)
        for name in names:
            if server.process.poll() is not None:
                print(f"{name}: not run, the server exited with {server.process.returncode}; its log's end:\n"
                      + "\n".join(server.log().splitlines()[-20:]))
                failed.append(name)
                continue
            started = time.monotonic()
            try:
                CASES[name](bench)
            except Exception as exc:  # noqa: BLE001 (one case's failure is reported, the others still run)
                failed.append(name)
                print(f"{name}: FAILED: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
            print(f"  ({name} took {time.monotonic() - started:.0f} s)", flush=True)
            settle(bench)
    finally:
        stop_server(server.process)
        print(f"server log: {server.log_path}")
    if failed:
        sys.exit(f"cases that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
