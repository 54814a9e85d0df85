"""The work budget per request (issue 25): the server's memory and time for the largest in-budget request, for 16 of
them at once (the attack that found the issue), and for one request into four crowd portraits, on generated models.

    python benchmarks/work_budget.py                         # this checkout
    python benchmarks/work_budget.py --repo /tmp/before      # another checkout (git archive <commit> | tar -x), before/after

Each case gets a fresh server (one API worker, the swapper re-batched as on a GPU, XMP credentials only), so no case
inherits another's heap. RSS is summed over every server process, sampled every 20 ms in a thread, and reported in
total and for the model service and the API worker (with its decode processes); "base" is the warm server before the
case. Generated models keep the real files' contracts, not their activations: the model service's growth here is
the tiles, crops and latents a request holds there, which the real inswapper's activations add to.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import psutil
from _fixtures import REPO, Server, draw_faces, start_server, stop_server, upload, write_models

MIB = 2**20
FOUR = [(256, 256), (768, 256), (256, 768), (768, 768)]
"""Four faces on a 1024x1024 portrait (letterboxed by 1.6: centres on multiples of 51.2)."""
CROWD = [(64 + 96 * i, 64 + 96 * j) for i in range(6) for j in range(6)]
"""36 faces on a 640x640 portrait, centred on stride-32 anchors with a gap between them (the generated detector's
640 canvas holds no more)."""
LARGEST = {"destinations": ",".join(f"four_{i}.png" for i in range(8)), "destination_face_id": "0", "pixel_boost": "512"}
"""8 portraits x 4 faces x 16 tiles: 512 swaps, the default SWAPAROONY_MAX_SWAPS_PER_REQUEST."""
CROWDED = {"destinations": ",".join(f"crowd_{i}.png" for i in range(4)), "destination_face_id": "0", "pixel_boost": "512"}
"""4 portraits x 36 faces x 16 tiles: 2,304 swaps."""


def gallery(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(8):
        cv2.imwrite(str(directory / f"four_{i}.png"), draw_faces((1024, 1024), FOUR, scale=1.6))
    for i in range(4):
        cv2.imwrite(str(directory / f"crowd_{i}.png"), draw_faces((640, 640), CROWD))
    return directory


def rss_by_role(pid: int) -> dict[str, float]:
    """MiB resident in the model service, the API worker with its decode processes, and all of the server."""
    found = {"models": 0.0, "api": 0.0, "total": 0.0}
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            rss, line = process.memory_info().rss / MIB, " ".join(process.cmdline())
        except psutil.Error:
            continue
        found["total"] += rss
        if "--service-name swaparoony-models" in line:
            found["models"] += rss
        elif "--service-name swaparoony" in line or "swaparoony.imaging.decode_worker" in line:
            found["api"] += rss
    return found


class Peak:
    """The highest RSS of each role while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = {"models": 0.0, "api": 0.0, "total": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for role, mib in rss_by_role(self.pid).items():
                self.peak[role] = max(self.peak[role], mib)
            time.sleep(0.02)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def swap(url: str, image: bytes, fields: dict[str, str]) -> tuple[int, str, float]:
    """Status, error code (if any) and seconds of one /swap."""
    started = time.perf_counter()
    response = httpx.post(url + "/swap", files={"image": ("me.jpg", image, "image/jpeg")}, data=fields, timeout=600)
    code = "" if response.status_code == 200 else str(response.json().get("code", ""))
    return response.status_code, code, time.perf_counter() - started


def swapper(server: Server) -> tuple[int, int]:
    """Swapper items and model-service batches so far, from /metrics."""
    text = httpx.get(server.url + "/metrics").text
    found = {}
    for name in ("items", "calls"):
        line = next((row for row in text.splitlines()
                     if row.startswith(f'swaparoony_model_{name}_total{{model="swapper"}}')), " 0")
        found[name] = int(float(line.split()[-1]))
    return found["items"], found["calls"]


def measure(repo: Path, work: Path, models: Path, destinations: Path, label: str,
            run: Callable[[Server], list[tuple[int, str, float]]]) -> None:
    server = start_server(work / label, {"SWAPAROONY_MODELS_DIR": str(models),
                                         "SWAPAROONY_DESTINATIONS_DIR": str(destinations),
                                         "SWAPAROONY_API_WORKERS": "1", "SWAPAROONY_REBATCH": "on",
                                         "SWAPAROONY_CONTENT_CREDENTIALS": "xmp"}, cwd=repo)
    try:
        swap(server.url, upload(1), {"destinations": "four_0.png", "pixel_boost": "512"})  # warm
        base, (items, calls) = rss_by_role(server.process.pid), swapper(server)
        started = time.perf_counter()
        with Peak(server.process.pid) as peak:
            answers = run(server)
        wall = time.perf_counter() - started
        after, (items_after, calls_after) = rss_by_role(server.process.pid), swapper(server)
    finally:
        stop_server(server.process)
    statuses = sorted({f"{status}{' ' + code if code else ''}" for status, code, _ in answers})
    print(f"{label}: {len(answers)} request(s) {', '.join(statuses)}; median {statistics.median(a[2] for a in answers):.2f} s, "
          f"all {wall:.2f} s; swapper {items_after - items:,} items in {calls_after - calls} batches")
    for role in ("total", "models", "api"):
        print(f"    RSS {role:6} base {base[role]:7,.0f} MiB, peak {peak.peak[role]:7,.0f} "
              f"(+{peak.peak[role] - base[role]:,.0f}), after {after[role]:7,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to serve (default: this one)")
    parser.add_argument("--runs", type=int, default=3, help="sequential runs of the largest request")
    parser.add_argument("--attackers", type=int, default=16, help="largest requests sent at once")
    args = parser.parse_args()
    image = upload(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models, destinations = write_models(work / "models"), gallery(work / "destinations")
        print(f"serving {args.repo.resolve()}; {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB")
        measure(args.repo, work, models, destinations, "largest (8 x 4 faces at 512: 512 swaps)",
                lambda server: [swap(server.url, image, LARGEST) for _ in range(args.runs)])
        measure(args.repo, work, models, destinations, f"{args.attackers} largest at once",
                lambda server: list(ThreadPoolExecutor(args.attackers).map(
                    lambda _: swap(server.url, image, LARGEST), range(args.attackers))))
        measure(args.repo, work, models, destinations, "crowd (4 x 36 faces at 512: 2,304 swaps)",
                lambda server: [swap(server.url, image, CROWDED)])


if __name__ == "__main__":
    main()
