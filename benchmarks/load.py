"""Load and soak against a real server on 127.0.0.1: latency percentiles, failures, resident memory.

    python benchmarks/load.py                     # generated models, 64 clients for 60 s, 1,000-request soak
    python benchmarks/load.py --models ./models   # the real model files
    python benchmarks/load.py --route /api/v1/swap --seconds 300 --soak 0   # the original API, a longer run

Every request is timed, failures included: the load line reports the longest request, so a request
that hangs until the timeout shows even when it finally fails.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from _fixtures import REPO, gallery, percentiles, start_server, stop_server, upload, write_models


def server_rss_mib(pid: int) -> float:
    """Resident memory of the server and all its workers."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


async def one_swap(client: httpx.AsyncClient, url: str, image: bytes, route: str = "/swap") -> tuple[int, float]:
    started = time.perf_counter()
    try:
        response = await client.post(url + route, files={"image": ("me.jpg", image, "image/jpeg")})
        status = response.status_code
    except httpx.HTTPError:
        status = 0
    return status, time.perf_counter() - started


async def run_clients(url: str, clients: int, seconds: float, image: bytes, route: str = "/swap",
                      longest: list[float] | None = None) -> tuple[list[float], dict[int, int], float]:
    """Closed loop: each client sends its next swap when the last one answers. Latencies, failures, elapsed;
    `longest` (if given) collects every request's time, failed ones included."""
    latencies: list[float] = []
    failures: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            status, took = await one_swap(client, url, image, route)
            if longest is not None:
                longest.append(took)
            if status == 200:
                latencies.append(took)
            else:
                failures[status] = failures.get(status, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        return latencies, failures, time.monotonic() - started


async def load(url: str, clients: int, seconds: float, image: bytes, route: str) -> None:
    every: list[float] = []
    latencies, failures, elapsed = await run_clients(url, clients, seconds, image, route, every)
    p = percentiles(latencies)
    print(f"load: {route}, {clients} clients for {seconds:.0f} s: {len(every)} requests, {len(latencies)} ok, "
          f"failures {failures or 0}, {len(latencies) / elapsed:.1f} req/s, latency p50 {p['p50'] * 1000:.0f} ms, "
          f"p95 {p['p95'] * 1000:.0f} ms, p99 {p['p99'] * 1000:.0f} ms, longest request {max(every) * 1000:.0f} ms")


async def soak(url: str, pid: int, total: int, concurrency: int, image: bytes) -> None:
    readings: list[float] = []
    failures = 0
    async with httpx.AsyncClient(timeout=300) as client:
        for done in range(0, total, 100):
            for start in range(0, 100, concurrency):
                results = await asyncio.gather(*(one_swap(client, url, image) for _ in range(min(concurrency, 100 - start))))
                failures += sum(status != 200 for status, _ in results)
            readings.append(server_rss_mib(pid))
            print(f"soak: {done + 100:5d} requests, server RSS {readings[-1]:7.1f} MiB")
    growth = (readings[-1] - readings[0]) / readings[0] * 100
    print(f"soak: {total} requests, {failures} failed; RSS growth after warm-up (100 -> {total}): {growth:+.1f}% "
          f"({'OK' if growth < 10 else 'OVER the 10% budget'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--soak", type=int, default=1000)
    parser.add_argument("--soak-concurrency", type=int, default=8)
    parser.add_argument("--route", default="/swap", help="/swap or the original API's /api/v1/swap")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to serve, for before/after (default: this one)")
    parser.add_argument("--models", type=Path, help="a real models directory (default: generated models)")
    parser.add_argument("--destinations", type=Path, help="a destinations directory (default: two 1280x1280 portraits)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="swaparoony-load-"))
    models = args.models or write_models(work / "models")
    destinations = args.destinations or gallery(work / "destinations")
    server = start_server(work, {"SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(destinations)},
                          cwd=args.repo.resolve())
    try:
        image = upload()
        print(f"server {server.url}, models {models}, destinations {destinations}")
        asyncio.run(soak(server.url, server.process.pid, 100, 4, image))  # warm-up
        asyncio.run(load(server.url, args.clients, args.seconds, image, args.route))
        if args.soak:
            asyncio.run(soak(server.url, server.process.pid, args.soak, args.soak_concurrency, image))
        print(f"model calls retried on a dropped connection: {server.log().count('connection dropped')}")
    finally:
        stop_server(server.process)


if __name__ == "__main__":
    main()
