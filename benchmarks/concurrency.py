"""Throughput and p95 latency against concurrency: adaptive batching on with the batch-1 models re-batched,
on with them run item by item, and off (max batch size 1). Providers from SWAPAROONY_PROVIDERS.

    python benchmarks/concurrency.py [--seconds 10] [--cost-faithful] [--levels 1 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from _fixtures import gallery, percentiles, start_server, stop_server, upload, write_models
from load import run_clients

LEVELS = (1, 4, 16, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--cost-faithful", action="store_true")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swaparoony-concurrency-"))
    models = write_models(work / "models", cost_faithful=args.cost_faithful)
    destinations = gallery(work / "destinations", count=2)
    image = upload()
    print(f"{'cost-faithful' if args.cost_faithful else 'small'} models, 2 destinations of 1280x1280, {args.seconds:.0f} s a level")
    print(f"{'batching':>20} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} failures")
    for label, batch, rebatch in (("on, re-batched", "32", "on"), ("on, item by item", "32", "off"), ("off", "1", "off")):
        server = start_server(work / f"batching-{label.replace(' ', '').replace(',', '-')}", {
            "SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(destinations),
            "SWAPAROONY_MAX_BATCH_SIZE": batch, "SWAPAROONY_REBATCH": rebatch,
        })
        try:
            asyncio.run(run_clients(server.url, 4, 2, image))  # warm-up, and the dispatcher's training
            for clients in args.levels:
                latencies, failures, elapsed = asyncio.run(run_clients(server.url, clients, args.seconds, image))
                p = percentiles(latencies)
                print(f"{label:>20} {clients:>7} {len(latencies) / elapsed:>7.1f} {p['p50'] * 1000:>7.0f} "
                      f"{p['p95'] * 1000:>7.0f} {sum(failures.values())}")
        finally:
            stop_server(server.process)


if __name__ == "__main__":
    main()
