"""What one request costs each process, through the real server: API worker CPU (with its decode workers),
model service CPU and latency per /swap into four 1280x1280 destinations, and requests/s at concurrency 16.

Small generated models, so the models cost almost nothing and the service's own work shows. --repo adds
an older checkout served the same way in the same run, for before/after; content credentials are
measured on and off, so signing is reported separately from the rest.

    python benchmarks/request_cost.py [--repo /path/to/old/checkout] [--requests 40] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from _fixtures import REPO, gallery, start_server, stop_server, upload, write_models
from load import run_clients


def processes(server_pid: int) -> dict[str, list[psutil.Process]]:
    """The API worker with its decode workers, and the model service worker."""
    found: dict[str, list[psutil.Process]] = {"api": [], "models": []}
    for child in psutil.Process(server_pid).children(recursive=True):
        line = " ".join(child.cmdline())
        if "--service-name swaparoony-models" in line:
            found["models"].append(child)
        elif "--service-name swaparoony" in line or "swaparoony.decode_worker" in line:
            found["api"].append(child)
    return found


def cpu_seconds(group: list[psutil.Process]) -> float:
    total = 0.0
    for process in group:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(repo: Path, work: Path, models: Path, destinations: Path, credentials: str, output_format: str,
            requests: int, seconds: float) -> dict[str, float]:
    server = start_server(work, {"SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(destinations),
                                 "SWAPAROONY_CONTENT_CREDENTIALS": credentials, "SWAPAROONY_API_WORKERS": "1"}, cwd=repo)
    image = upload()
    try:
        with httpx.Client(timeout=120) as client:
            def one() -> float:
                start = time.perf_counter()
                response = client.post(server.url + "/swap", files={"image": ("selfie.jpg", image, "image/jpeg")},
                                       data={"output_format": output_format})
                assert response.status_code == 200, response.text[:300]
                return time.perf_counter() - start

            for _ in range(5):
                one()
            groups = processes(server.process.pid)
            before = {name: cpu_seconds(group) for name, group in groups.items()}
            latencies = [one() for _ in range(requests)]
            after = {name: cpu_seconds(group) for name, group in processes(server.process.pid).items()}
        rps = 0.0
        if seconds:
            done, _, elapsed = asyncio.run(run_clients(server.url, 16, seconds, image))
            rps = len(done) / elapsed
        return {"api_ms": (after["api"] - before["api"]) / requests * 1e3,
                "models_ms": (after["models"] - before["models"]) / requests * 1e3,
                "latency_ms": statistics.median(latencies) * 1e3, "rps16": rps}
    finally:
        stop_server(server.process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, help="an older checkout to compare with")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--formats", nargs="+", default=["jpeg", "png", "webp"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swaparoony-cost-"))
    models = write_models(work / "models")
    destinations = gallery(work / "destinations", count=4)
    repos = ([("before", args.repo)] if args.repo else []) + [("now", REPO)]
    print(f"/swap of a 640x640 selfie into 4 destinations of 1280x1280, small models, 1 API worker; "
          f"{args.requests} sequential requests (CPU per request, median latency), then 16 clients for {args.seconds:.0f} s")
    print(f"{'code':<7}{'format':<6}{'credentials':<12}{'API CPU ms':>11}{'model CPU ms':>13}{'latency ms':>11}{'req/s @16':>10}")
    for output_format in args.formats:
        for credentials in ("on", "off"):
            for label, repo in repos:  # one after the other, in the same run
                seconds = args.seconds if output_format == "jpeg" else 0
                r = measure(repo, work / f"{label}-{output_format}-{credentials}", models, destinations, credentials,
                            output_format, args.requests if output_format == "jpeg" else max(5, args.requests // 4), seconds)
                rps = f"{r['rps16']:>10.1f}" if seconds else f"{'-':>10}"
                print(f"{label:<7}{output_format:<6}{credentials:<12}{r['api_ms']:>11.1f}{r['models_ms']:>13.1f}"
                      f"{r['latency_ms']:>11.1f}{rps}", flush=True)


if __name__ == "__main__":
    main()
