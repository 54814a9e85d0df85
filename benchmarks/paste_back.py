"""Paste-back alone: ours (face box only, precomputed mask) against insightface's INSwapper.get paste.

insightface's paste is timed as INSwapper.get(paste_back=True) minus INSwapper.get(paste_back=False)
on the same inputs and the small generated swapper, so only the pasting differs.

    python benchmarks/paste_back.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from insightface.model_zoo import get_model

from _fixtures import draw_faces, write_models

from swaparoony.models.scrfd import faces_from_detections, letterbox
from swaparoony.imaging.face_geometry import align_matrix, crop_face, feather_mask, paste_back, paste_region
from swaparoony.imaging.face_geometry import crop_mask
from swaparoony.models.inswapper import SWAPPER
from swaparoony.models.loaded_models import LoadedModels


def median_ms(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    models = write_models(Path(tempfile.mkdtemp(prefix="swaparoony-paste-")))
    loaded = LoadedModels.load(models, ("CPUExecutionProvider",))
    swapper = get_model(str(models / SWAPPER.relative_path), providers=["CPUExecutionProvider"])
    for size in (1280, 4096):
        scale = size / 640
        frame = draw_faces((size, size), [(int(320 * scale), int(320 * scale))], scale=scale)
        canvas, factor = letterbox(frame)
        face = faces_from_detections(loaded.run("detector", [canvas])[0], factor)[0]
        matrix = align_matrix(face.landmarks, 128)
        region = paste_region(frame.shape, matrix, crop_mask(128))
        swapped = crop_face(frame, matrix, 128)
        target = SimpleNamespace(kps=face.landmarks)
        source = SimpleNamespace(normed_embedding=np.full(512, 1 / np.sqrt(512), dtype=np.float32))
        ours_ms = median_ms(lambda: paste_back(frame, swapped, region), args.runs)
        with_paste = median_ms(lambda: swapper.get(frame, target, source, paste_back=True), args.runs)
        without = median_ms(lambda: swapper.get(frame, target, source, paste_back=False), args.runs)
        theirs_ms = with_paste - without
        print(f"{size}x{size}: ours {ours_ms:.2f} ms, INSwapper.get paste {theirs_ms:.1f} ms "
              f"(get with paste {with_paste:.1f} ms, without {without:.1f} ms): {theirs_ms / ours_ms:.0f}x")
    precompute = median_ms(lambda: paste_region(frame.shape, matrix, feather_mask(128, 10, 5.0)), args.runs)
    print(f"once per destination face at start-up (region and mask): {precompute:.2f} ms at 4096x4096")


if __name__ == "__main__":
    main()
