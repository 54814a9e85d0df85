"""Hostile uploads against a real server on 127.0.0.1: memory, a valid request's latency under attack, the 413.

    python benchmarks/hostile.py                    # this checkout, generated models
    python benchmarks/hostile.py --repo ../old      # another checkout of the service, for before/after

Prints: peak server RSS (all processes) during six concurrent 16-bit 6300x6300 PNG uploads; the
latency of a valid /swap alone and while six scan-bomb JPEGs are in flight (a ~450 KB bomb of
thousands of tiny scans, and one under the scan limit built to decode slowly); the time to the 413
for a 200 MiB upload.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from _fixtures import REPO, gallery, start_server, stop_server, upload, write_models
from load import server_rss_mib

sys.path.insert(0, str(REPO / "tests"))
from hostile_files import gradient_jpeg, progressive_jpeg, scan_bomb, sixteen_bit_png  # noqa: E402
from test_body_limit import file_part_head, stream_upload  # noqa: E402

MIB = 1024 * 1024


def post(url: str, image: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        status = httpx.post(url + "/swap", files={"image": ("me.jpg", image, "image/jpeg")}, timeout=600).status_code
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


def under_attack(url: str, attack: bytes, valid: bytes, count: int = 6) -> tuple[float, list[int], float]:
    """Latency of one valid swap sent just after `count` copies of an attack; the attacks' statuses and longest time."""
    with ThreadPoolExecutor(count + 1) as pool:
        attacks = [pool.submit(post, url, attack) for _ in range(count)]
        time.sleep(0.5)  # benchmark only: let the attacks reach the decoder first
        status, took = post(url, valid)
        results = [a.result() for a in attacks]
    assert status == 200, f"the valid swap failed with {status}"
    return took, [s for s, _ in results], max(t for _, t in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to serve (default: this one)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swaparoony-hostile-"))
    models, destinations = write_models(work / "models"), gallery(work / "destinations")
    server = start_server(work, {"SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(destinations)},
                          cwd=args.repo.resolve())
    try:
        valid = upload()
        print(f"serving {args.repo.resolve()} at {server.url}")
        for _ in range(5):
            post(server.url, valid)  # warm-up
        alone = statistics.median(post(server.url, valid)[1] for _ in range(10))
        print(f"valid /swap alone: median {alone * 1000:.0f} ms")

        png = sixteen_bit_png((6300, 6300))
        base = server_rss_mib(server.process.pid)
        with RssSampler(server.process.pid) as rss, ThreadPoolExecutor(6) as pool:
            statuses = [s for s, _ in pool.map(lambda _: post(server.url, png), range(6))]
        print(f"six concurrent 16-bit 6300x6300 PNGs ({len(png):,} bytes each): statuses {statuses}, "
              f"server RSS {base:.0f} MiB before, peak {rss.peak:.0f} MiB (+{rss.peak - base:.0f})")

        bombs = {
            "many-scan bomb (6000x6000 gradient, 7,000 copies of a 23-byte scan)": scan_bomb(gradient_jpeg(6000), 7000),
            "slow bomb under the scan limit (3000x3000, 54 copies of its largest scan)":
                scan_bomb(progressive_jpeg((3000, 3000)), 54, largest=True),
        }
        for name, bomb in bombs.items():
            runs = [under_attack(server.url, bomb, valid) for _ in range(args.runs)]
            print(f"{name}, {len(bomb):,} bytes, six in flight: valid /swap median "
                  f"{statistics.median(r[0] for r in runs) * 1000:.0f} ms (alone {alone * 1000:.0f} ms); "
                  f"bomb statuses {runs[0][1]}, longest bomb {max(r[2] for r in runs):.1f} s")

        times = []
        for _ in range(5):
            reply, seconds, sent = stream_upload(server, "/swap", file_part_head(), 200 * MIB, chunked=False)
            times.append(seconds)
        print(f"200 MiB upload: answered {reply.split(chr(13))[0]!r}, median {statistics.median(times) * 1000:.0f} ms, "
              f"{sent / MIB:.0f} MiB sent before the answer (last run)")
    finally:
        stop_server(server.process)


if __name__ == "__main__":
    main()
