"""Per-request cost, stage by stage, and side by side with a pipeline built the way the original worked.

One upload with two faces, four 1280x1280 destinations, same model files, same process, alternating
runs. Prints medians; run with --cost-faithful for generated models with the real files' compute.

    python benchmarks/stages.py [--cost-faithful] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _fixtures import gallery, upload, write_models
from _pipelines import OriginalPipeline, ours, swap_like_ours

from swaparoony.models.scrfd import faces_from_detections, letterbox
from swaparoony.imaging.face_geometry import align_matrix, crop_face, paste_back
from swaparoony.models.arcface import RECOGNIZER_SIZE, FaceRecognizer
from swaparoony.models.inswapper import FaceSwapper
from swaparoony.types import SwapItem
from swaparoony.imaging.vision import decode_image, encode_image


def stage_times(engine, loaded, image: bytes) -> dict[str, float]:
    """Each stage of our request path timed on its own, in order."""
    times: dict[str, float] = {}
    clock = time.perf_counter
    start = clock()
    frame = decode_image(image, 2**30, 10**9)
    times["decode"] = clock() - start
    start = clock()
    canvas, scale = letterbox(frame)
    faces = faces_from_detections(loaded.run("detector", [canvas])[0], scale)
    times["detect"] = clock() - start
    start = clock()
    crop = crop_face(frame, align_matrix(faces[0].landmarks, RECOGNIZER_SIZE), RECOGNIZER_SIZE)
    (latent,) = loaded.of(FaceSwapper).latents(loaded.of(FaceRecognizer)([crop]))
    times["embed"] = clock() - start
    targets = list(engine.gallery.destinations.values())
    start = clock()
    crops = loaded.of(FaceSwapper)([SwapItem(d.faces[0].crop, latent) for d in targets])
    times["swap"] = clock() - start
    start = clock()
    pasted = [paste_back(d.frame, c, d.faces[0].region) for d, c in zip(targets, crops)]
    times["paste"] = clock() - start
    start = clock()
    for result in pasted:
        encode_image(result, "jpeg", 90)
    times["encode"] = clock() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cost-faithful", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swaparoony-stages-"))
    models = write_models(work / "models", cost_faithful=args.cost_faithful)
    destinations = gallery(work / "destinations", count=4, size=1280)
    image = upload(faces=2)
    engine, loaded = ours(models, destinations)
    original = OriginalPipeline(models, destinations)
    kind = "cost-faithful" if args.cost_faithful else "small"
    print(f"{kind} generated models; 1 upload (2 faces, 640x640 JPEG), 4 destinations of 1280x1280; {args.runs} runs")

    # Model runs alone: what the request cannot avoid (1 detection, 1 embedding, 4 swaps).
    swap_like_ours(engine, image), original.swap(image)  # warm-up both
    stages, ours_s, original_s, models_only = defaultdict(list), [], [], []
    for _ in range(args.runs):
        for name, seconds in stage_times(engine, loaded, image).items():
            stages[name].append(seconds)
        loaded.runs.clear()
        start = time.perf_counter()
        swap_like_ours(engine, image)
        ours_s.append(time.perf_counter() - start)
        runs = dict(loaded.runs)
        start = time.perf_counter()
        original.swap(image)
        original_s.append(time.perf_counter() - start)
    canvas, _ = letterbox(decode_image(image, 2**30, 10**9))
    targets = list(engine.gallery.destinations.values())
    face_crop = targets[0].faces[0].crop[8:120, 8:120].copy()  # any aligned 112x112 crop
    recognizer, swapper = loaded.of(FaceRecognizer), loaded.of(FaceSwapper)
    (latent,) = swapper.latents(recognizer([face_crop]))
    items = [SwapItem(d.faces[0].crop, latent) for d in targets]
    for _ in range(args.runs):
        start = time.perf_counter()
        loaded.run("detector", [canvas])
        swapper.latents(recognizer([face_crop]))
        swapper(items)
        models_only.append(time.perf_counter() - start)

    median = statistics.median
    print("stage medians (ms): " + ", ".join(f"{k} {median(v) * 1000:.1f}" for k, v in stages.items()))
    print(f"model runs per request: {runs}")
    ours_ms, original_ms, floor_ms = median(ours_s) * 1000, median(original_s) * 1000, median(models_only) * 1000
    print(f"ours (in-process engine, base64 JPEGs): median {ours_ms:.1f} ms")
    print(f"original-style pipeline:               median {original_ms:.1f} ms")
    print(f"speed-up: {original_ms / ours_ms:.2f}x")
    print(f"model runs alone (1 detect, 1 embed, 4 swaps): median {floor_ms:.1f} ms; "
          f"request overhead over them: {(ours_ms / floor_ms - 1) * 100:+.1f}%")
    original.close()


if __name__ == "__main__":
    main()
