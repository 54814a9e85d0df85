"""What a clip costs: loading a 3-second 12 fps clip at 640 px into the gallery (decode, watermark, detection,
alignment; its memory), and a swap into it by stage (decode and detect the upload, swap, paste, encode, sign).

In-process engine on the generated models (cost-faithful with --cost-faithful: the real detector's, recognizer's
and swapper's compute), content credentials on; medians of --runs requests after one warm-up.

    python benchmarks/clips.py [--cost-faithful] [--runs 5] [--format mp4]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import psutil
from _fixtures import PROVIDERS, draw_faces, upload, write_models
from generated_models import moving_face_frames, mp4_clip, real_watermark_files

from swaparoony.engine import SwapEngine, SwapOptions
from swaparoony.imaging.clip_codec import ClipBounds, decode_clip
from swaparoony.models import rivagan
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.model_calls import LocalModelCalls
from swaparoony.models.scrfd import letterbox
from swaparoony.settings import Settings
from swaparoony.telemetry import NoTelemetry

FRAMES, FPS, SIZE = 36, 12, (640, 352)


class Stages(NoTelemetry):
    """The engine's Telemetry, keeping each stage's seconds per request."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def stage(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cost-faithful", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--format", default="mp4", choices=["mp4", "webp", "gif"])
    parser.add_argument("--real-watermark", action="store_true",
                        help="mark the frames at load with the real RivaGAN encoder (from invisible-watermark's wheel)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clips-bench-"))
    models_dir = write_models(work / "models", cost_faithful=args.cost_faithful)
    if args.real_watermark:
        real_watermark_files(models_dir)
    (work / "gallery").mkdir()
    clip_file = mp4_clip(moving_face_frames(FRAMES, size=SIZE, start=(160, 160), step=(8, 0)), FPS)
    loaded = LoadedModels.load(models_dir, providers=PROVIDERS)
    settings = Settings(models_dir=models_dir, destinations_dir=work / "gallery", state_dir=work / "state")

    stages = Stages()
    cv2.imwrite(str(work / "gallery" / "portrait.png"), draw_faces((640, 640), [(320, 320)]))
    engine = asyncio.run(SwapEngine.start(LocalModelCalls(loaded), settings, stages))  # warm: models, arenas, pools
    started = time.perf_counter()
    decoded = decode_clip(clip_file, ".mp4", ClipBounds())
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    loaded.run("detector", [letterbox(frame)[0] for frame in decoded.frames])
    detect_s = time.perf_counter() - started
    watermark_s = 0.0
    if args.real_watermark:
        started = time.perf_counter()
        asyncio.run(rivagan.watermarked(decoded.frames, LocalModelCalls(loaded)))
        watermark_s = time.perf_counter() - started
    del decoded
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    (work / "gallery" / "clip.mp4").write_bytes(clip_file)
    started = time.perf_counter()
    asyncio.run(engine.live.reload())
    load_s = time.perf_counter() - started
    gc.collect()
    grown = process.memory_info().rss - before
    clip = engine.gallery.destinations["clip.mp4"].clip
    assert clip is not None, engine.gallery.destinations["clip.mp4"].reason
    frames_bytes = sum(frame.nbytes for frame in clip.frames)

    print(f"clip: {FRAMES} frames, {SIZE[0]}x{SIZE[1]}, {FRAMES / FPS:g} s, {len(clip_file):,} bytes; "
          f"{'cost-faithful' if args.cost_faithful else 'small'} generated models, "
          f"{'real' if args.real_watermark else 'stand-in'} watermark encoder, {PROVIDERS}")
    print(f"load: {load_s * 1000:.0f} ms to add the clip to a warm gallery (read, decode, watermark, detect, track, "
          f"align, prepare); alone: decode {decode_s * 1000:.0f} ms, watermark {watermark_s * 1000:.0f} ms, detection "
          f"of {FRAMES} frames {detect_s * 1000:.0f} ms")
    print(f"memory: the clip holds {clip.nbytes / 2**20:.1f} MiB ({frames_bytes / 2**20:.1f} MiB frames, "
          f"{(clip.nbytes - frames_bytes) / 2**20:.1f} MiB face crops at 128/256/512 and masks); "
          f"process RSS grew {grown / 2**20:.0f} MiB as it loaded")

    selfie = upload(1)
    options = SwapOptions(clip_format=args.format, destinations=("clip.mp4",))
    per_stage: dict[str, list[float]] = defaultdict(list)
    totals = []
    for run in range(args.runs + 1):
        stages.seconds.clear()
        started = time.perf_counter()
        (result,) = asyncio.run(engine.swap(selfie, options)).swapped
        total = time.perf_counter() - started
        if run:  # the first run warms the codecs and thread pools
            totals.append(total)
            for name, seconds in stages.seconds.items():
                per_stage[name].append(seconds)
    engine.close()
    print(f"swap into the clip ({args.format}, {len(result.data):,} bytes out), medians of {args.runs} runs:")
    for name in ("decode", "detect", "swap", "paste", "encode", "mark"):
        print(f"  {name:7s} {statistics.median(per_stage[name]) * 1000:9.1f} ms")
    print(f"  {'total':7s} {statistics.median(totals) * 1000:9.1f} ms  ({statistics.median(totals) / FRAMES * 1000:.1f} ms a frame)")


if __name__ == "__main__":
    main()
