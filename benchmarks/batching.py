"""Swap milliseconds per face against batch size: inswapper item by item against its checked free-batch copy.

The model service gets one batch per call (a request's destinations, and whatever adaptive batching
merged); this times the swapper's batched run on such batches in-process, with the providers the service would use
(SWAPAROONY_PROVIDERS, default CPU). Cost-faithful generated models by default (175 GFLOPs a swap).

    SWAPAROONY_PROVIDERS=CUDAExecutionProvider python benchmarks/batching.py --sizes 1 4 16 32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _fixtures import PROVIDERS, write_models

from swaparoony.models.arcface import FaceRecognizer
from swaparoony.models.inswapper import FaceSwapper
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.types import SwapItem


def items(count: int, latent: np.ndarray) -> list[SwapItem]:
    rng = np.random.default_rng(count)
    return [SwapItem(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8), latent) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="the small generated models (overhead only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = write_models(Path(tmp) / "models", cost_faithful=not args.small)
        loaded = {mode: LoadedModels.load(models, tuple(PROVIDERS), rebatch=mode) for mode in ("off", "on")}
    identities = loaded["off"].of(FaceRecognizer)([np.full((112, 112, 3), 128, np.uint8)])
    latent = loaded["off"].of(FaceSwapper).latents(identities)[0]
    print(f"{'small' if args.small else 'cost-faithful'} models, providers {loaded['off'].providers['swapper']}; "
          f"swapper batched: item by item {loaded['off'].batching['swapper']}, copy {loaded['on'].batching['swapper']}")
    print(f"{'batch':>5} {'item by item ms/face':>21} {'re-batched ms/face':>19} {'speed-up':>9}")
    for size in args.sizes:
        batch = items(size, latent)
        for models_ in loaded.values():
            models_.of(FaceSwapper)(batch)  # warm-up: kernels, arena, cuDNN's algorithm search for this shape
        times: dict[str, list[float]] = {mode: [] for mode in loaded}
        for _ in range(args.runs):
            for mode, models_ in loaded.items():  # alternating
                start = time.perf_counter()
                models_.of(FaceSwapper)(batch)
                times[mode].append((time.perf_counter() - start) / size)
        one, many = (statistics.median(times[mode]) * 1e3 for mode in ("off", "on"))
        print(f"{size:>5} {one:>21.1f} {many:>19.1f} {one / many:>8.2f}x")


if __name__ == "__main__":
    main()
