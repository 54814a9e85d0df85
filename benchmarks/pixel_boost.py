"""What pixel boost, the identity score and colour match cost per request, on the cost-faithful models.

In-process engine (real ONNX Runtime sessions on this machine's providers), one 1280x1280 portrait with
two faces, a 640x640 selfie, JPEG out; medians of --runs per setting, all measured in one run. The
swapper's share is timed separately (its batch for the request, as the model service runs it).

    python benchmarks/pixel_boost.py [--runs 5] [--providers CPUExecutionProvider]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _fixtures import gallery, upload, write_models
from _pipelines import LOOP

from swaparoony.engine import SwapEngine, SwapOptions
from swaparoony.models.arcface import FaceRecognizer
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.model_calls import LocalModelCalls
from swaparoony.settings import Settings

SETTINGS = [
    ("128 (default)", SwapOptions(destinations=("portrait_0.png",))),
    ("256", SwapOptions(destinations=("portrait_0.png",), pixel_boost=256)),
    ("512", SwapOptions(destinations=("portrait_0.png",), pixel_boost=512)),
    ("128, both faces (destination_face_id=0)", SwapOptions(destinations=("portrait_0.png",), destination_face_id=0)),
    ("128, color_match", SwapOptions(destinations=("portrait_0.png",), color_match=True)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--providers", default=None, help="comma-separated ONNX Runtime providers (default: the best)")
    args = parser.parse_args()
    providers = tuple(args.providers.split(",")) if args.providers else None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loaded = LoadedModels.load(write_models(work / "models", cost_faithful=True), providers, rebatch="on")
        settings = Settings(destinations_dir=gallery(work / "destinations", count=1), state_dir=work / "state",
                            content_credentials="off")
        engine = LOOP.run_until_complete(SwapEngine.start(LocalModelCalls(loaded), settings))
        selfie = upload()
        print(f"providers {loaded.providers['swapper']}; swapper batches as one call: {loaded.batching['swapper']}")
        print(f"{'setting':42} {'swaps':>6} {'request ms':>11} {'x 128':>6}")
        baseline = None
        for label, options in SETTINGS:
            LOOP.run_until_complete(engine.swap(selfie, options))  # warm: cuDNN picks its kernels per shape
            times = []
            for _ in range(args.runs):
                loaded.runs.clear()
                started = time.perf_counter()
                LOOP.run_until_complete(engine.swap(selfie, options))
                times.append((time.perf_counter() - started) * 1000)
            median = statistics.median(times)
            baseline = baseline or median
            print(f"{label:42} {loaded.runs['swapper']:>6} {median:>11.1f} {median / baseline:>6.2f}")
        crop = np.full((112, 112, 3), 128, np.uint8)
        embed_ms = statistics.median(_ms(lambda: loaded.of(FaceRecognizer)([crop])) for _ in range(args.runs))
        print(f"identity score: one recognizer run per swapped face, {embed_ms:.1f} ms here ({embed_ms / baseline:.1%} "
              "of a default request)")
        engine.close()


def _ms(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main()
