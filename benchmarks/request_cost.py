"""What one request costs each process, through the real server: API worker CPU (with its decode workers),
model service CPU and latency per /swap into four 1280x1280 destinations, and requests/s at concurrency 16.

Small generated models, so the models cost almost nothing and the service's own work shows. --repo adds
an older checkout served the same way in the same run, for before/after (without the SPEEDUPS its pyproject.toml
did not name); content credentials are measured on and off, so signing is reported separately from the rest, and
the watermark (the real RivaGAN encoder, from invisible-watermark's wheel) on or off as asked.

    python benchmarks/request_cost.py [--repo /path/to/old/checkout ...] [--requests 40] [--seconds 10]
        [--formats jpeg png webp] [--credentials on off] [--watermark on off]

"client ms" is the load generator's own CPU per request at concurrency 16: it shares the machine with the service.
"raw req/s" is the same 16 clients through raw_clients, a generator that takes far less of that CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from _fixtures import REPO, gallery, start_server, stop_server, upload, write_models
from generated_models import real_watermark_files
from load import run_clients


def processes(server_pid: int) -> dict[str, list[psutil.Process]]:
    """The API worker with its decode workers, and the model service worker."""
    found: dict[str, list[psutil.Process]] = {"api": [], "models": []}
    for child in psutil.Process(server_pid).children(recursive=True):
        line = " ".join(child.cmdline())
        if "--service-name swaparoony-models" in line:
            found["models"].append(child)
        elif "--service-name swaparoony" in line or "swaparoony.imaging.decode_worker" in line:
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


async def raw_clients(url: str, clients: int, seconds: float, image: bytes) -> tuple[int, float]:
    """Requests answered 200 and seconds taken by `clients` closed-loop clients that send one prebuilt /swap request
    over keep-alive sockets and read each answer by its Content-Length without parsing it: a load generator that
    takes little of the CPU it shares with the service (httpx reading and parsing 1.3 MB answers takes ~10 ms each)."""
    built = httpx.Request("POST", url + "/swap", files={"image": ("selfie.jpg", image, "image/jpeg")})
    body = built.read()
    host, port = httpx.URL(url).host, httpx.URL(url).port
    head = (f"POST /swap HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {built.headers['content-type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    deadline, ok = time.monotonic() + seconds, 0

    async def client() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                writer.write(head + body)
                status_line, *headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                length = next(int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:"))
                await reader.readexactly(length)
                ok += status_line.split()[1] == "200"
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return ok, time.monotonic() - started


SPEEDUPS = ("uvloop", "httptools")
"""Modules that change how a checkout runs merely by being installed: uvicorn uses them whenever it can import them."""


def undeclared_speedups(repo: Path) -> list[str]:
    """The SPEEDUPS an older checkout did not depend on, to be hidden from it so it is served as it shipped."""
    declared = (repo / "pyproject.toml").read_text()
    return [module for module in SPEEDUPS if f'"{module}' not in declared]


def hidden(modules: list[str], work: Path) -> dict[str, str]:
    """Environment that serves a checkout as if these installed modules were not."""
    if not modules:
        return {}
    stubs = work / "hidden-modules"
    for module in modules:
        (stubs / module).mkdir(parents=True, exist_ok=True)
        (stubs / module / "__init__.py").write_text(f"raise ImportError('{module} is hidden from this checkout')\n")
    return {"PYTHONPATH": str(stubs)}


def measure(repo: Path, work: Path, models: Path, destinations: Path, credentials: str, output_format: str,
            requests: int, seconds: float, env: dict[str, str] | None = None) -> dict[str, float]:
    server = start_server(work, {"SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(destinations),
                                 "SWAPAROONY_CONTENT_CREDENTIALS": credentials, "SWAPAROONY_API_WORKERS": "1",
                                 **(env or {})}, cwd=repo)
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
        rps = client_ms = raw_rps = raw_client_ms = 0.0
        if seconds:
            started = time.process_time()
            done, _, elapsed = asyncio.run(run_clients(server.url, 16, seconds, image))
            rps = len(done) / elapsed
            client_ms = (time.process_time() - started) / max(1, len(done)) * 1e3
            started = time.process_time()
            answered, elapsed = asyncio.run(raw_clients(server.url, 16, seconds, image))
            raw_rps = answered / elapsed
            raw_client_ms = (time.process_time() - started) / max(1, answered) * 1e3
        return {"api_ms": (after["api"] - before["api"]) / requests * 1e3,
                "models_ms": (after["models"] - before["models"]) / requests * 1e3,
                "latency_ms": statistics.median(latencies) * 1e3, "rps16": rps, "client_ms": client_ms,
                "raw_rps16": raw_rps, "raw_client_ms": raw_client_ms}
    finally:
        stop_server(server.process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, action="append", default=[],
                        help="an older checkout to compare with (repeat for several; each is labelled by its folder name)")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--formats", nargs="+", default=["jpeg", "png", "webp"])
    parser.add_argument("--credentials", nargs="+", default=["on", "off"], choices=["on", "off"])
    parser.add_argument("--watermark", nargs="+", default=["on"], choices=["on", "off"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swaparoony-cost-"))
    models = real_watermark_files(write_models(work / "models"))
    destinations = gallery(work / "destinations", count=4)
    repos = [(repo.name[-12:], repo) for repo in args.repo] + [("now", REPO)]
    print(f"/swap of a 640x640 selfie into 4 destinations of 1280x1280, small models, 1 API worker; "
          f"{args.requests} sequential requests (CPU per request, median latency), then 16 clients for {args.seconds:.0f} s")
    print(f"{'code':<13}{'format':<6}{'credentials':<12}{'watermark':<10}{'API CPU ms':>11}{'model CPU ms':>13}{'latency ms':>11}{'req/s @16':>10}"
          f"{'client ms':>10}{'raw req/s':>10}{'client ms':>10}")
    for output_format in args.formats:
        for credentials, watermark, (label, repo) in itertools.product(args.credentials, args.watermark, repos):  # in one run
            seconds = args.seconds if output_format == "jpeg" else 0
            r = measure(repo, work / f"{label}-{output_format}-{credentials}-{watermark}", models, destinations,
                        credentials, output_format, args.requests if output_format == "jpeg" else max(5, args.requests // 4),
                        seconds, {**hidden(undeclared_speedups(repo), work / label), "SWAPAROONY_WATERMARK": watermark})
            rps = (f"{r['rps16']:>10.1f}{r['client_ms']:>10.1f}{r['raw_rps16']:>10.1f}{r['raw_client_ms']:>10.1f}"
                   if seconds else f"{'-':>10}" * 4)
            print(f"{label:<13}{output_format:<6}{credentials:<12}{watermark:<10}{r['api_ms']:>11.1f}{r['models_ms']:>13.1f}"
                  f"{r['latency_ms']:>11.1f}{rps}", flush=True)


if __name__ == "__main__":
    main()
