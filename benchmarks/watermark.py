"""The watermark as the service applies and reads it (swaparoony/models/rivagan.py, swaparoony/provenance/watermark.py),
on the real RivaGAN files: what it survives, how often an unmarked photo reads as marked, what it costs.

Four 1280x1280 photo destinations are marked as the gallery marks them at load; a face (a feathered ellipse from
another photo) then covers the middle 15 % as a swap would; the result is served as JPEG q90 (metadata stripped
changes no pixel, so that row is the served file itself) and attacked. Each cell: mean bit accuracy over the 32 bits,
the fewest service-mark bits read right, and the pictures found (22 of 24 service-mark bits).

False positives: every photo in --photos (one file per distinct photo: the set `benchmarks/watermark_candidates.py
--export-photos` writes), else the photos bundled in scikit-image and insightface and the repository's Grace Hopper,
each as it is, as a JPEG q75 re-save, at half size and as its middle 70 %.

    python benchmarks/watermark.py [--models-dir DIR] [--photos DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from _fixtures import REPO

import insightface
from generated_models import real_watermark_files
from skimage import data as skimage_data
from swaparoony.models import rivagan
from swaparoony.models.family import OpenedModel, RunOptions
from swaparoony.models.onnx_loader import CPU, open_session
from swaparoony.provenance.watermark import FOUND_AT, SERVICE_MARK, add_change, payload, reading, small_copy

SIDE = 1280
PAYLOAD = np.array(payload(7))
Attack = Callable[[np.ndarray], np.ndarray]


def pil_roundtrip(bgr: np.ndarray, fmt: str, **options: object) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[..., ::-1])).save(buffer, fmt, **options)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))[..., ::-1].copy()


def jpeg(quality: int) -> Attack:
    return lambda bgr: pil_roundtrip(bgr, "JPEG", quality=quality)


def half(bgr: np.ndarray) -> np.ndarray:
    return jpeg(90)(cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2), interpolation=cv2.INTER_AREA))


def cropped(share: float) -> Attack:
    """Cut this share of the width and of the height, unevenly and off the 8-pixel grid, as a hand crop would."""
    def crop(bgr: np.ndarray) -> np.ndarray:
        height, width = bgr.shape[:2]
        top, left = round(height * share * 0.6) + 3, round(width * share * 0.4) + 5
        return jpeg(90)(bgr[top : top + round(height * (1 - share)), left : left + round(width * (1 - share))])
    return crop


ATTACKS: dict[str, Attack] = {
    "served JPEG q90 (metadata stripped)": lambda bgr: bgr,
    "JPEG q90 re-save": jpeg(90),
    "JPEG q75 re-save": jpeg(75),
    "JPEG q50 re-save": jpeg(50),
    "resize to 50 %": half,
    "10 % crop": cropped(0.1),
    "20 % crop (not designed for)": cropped(0.2),
    "PNG -> JPEG (Pillow default q75)": lambda bgr: pil_roundtrip(bgr, "JPEG"),
    "WebP (Pillow default q80)": lambda bgr: pil_roundtrip(bgr, "WEBP"),
    "mirrored (not designed for)": lambda bgr: jpeg(90)(bgr[:, ::-1]),
    "rotated 90 degrees (not designed for)": lambda bgr: jpeg(90)(np.rot90(bgr)),
}


def destinations() -> list[np.ndarray]:
    bundled = Path(skimage_data.__file__).parent
    files = [bundled / "astronaut.png", REPO / "destinations" / "grace_hopper.jpg",
             Path(insightface.__file__).parent / "data" / "images" / "t1.jpg", bundled / "coffee.png"]
    return [cv2.resize(cv2.imread(str(path)), (SIDE, SIDE), interpolation=cv2.INTER_AREA) for path in files]


def with_face(destination: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """A swap's share of the picture: a feathered ellipse of another photo over the middle 15 % of the area."""
    height, width = destination.shape[:2]
    mask = np.zeros((height, width), np.float32)
    axes = (int(width * 0.22), int(height * 0.22))  # pi * 0.22^2 = 15 %
    cv2.ellipse(mask, (width // 2, height // 2), axes, 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 12)[..., None]
    face = cv2.resize(donor, (width, height))
    return (destination * (1 - mask) + face * mask).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def unmarked(folder: Path | None) -> list[tuple[str, np.ndarray]]:
    bundled = Path(skimage_data.__file__).parent
    files = [bundled / name for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
                                         "motorcycle_right.png", "ihc.png", "hubble_deep_field.jpg", "retina.jpg")]
    files += [Path(insightface.__file__).parent / "data" / "images" / "t1.jpg", REPO / "destinations" / "grace_hopper.jpg"]
    if folder is not None:  # the exported set already holds these packages' photos
        files = sorted(folder.iterdir())
    photos = []
    for path in files:
        with Image.open(path) as image:
            photos.append((path.name, np.asarray(image.convert("RGB"))[..., ::-1].copy()))
    return photos


def variants(bgr: np.ndarray) -> list[np.ndarray]:
    height, width = bgr.shape[:2]
    return [bgr, jpeg(75)(bgr), cv2.resize(bgr, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA),
            bgr[int(height * 0.15) : int(height * 0.85), int(width * 0.15) : int(width * 0.85)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, help="holding rivagan_encoder.onnx and rivagan_decoder.onnx "
                        "(default: taken from invisible-watermark's wheel)")
    parser.add_argument("--photos", type=Path, help="a folder of unmarked real photos for the false-positive count")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    models = args.models_dir or real_watermark_files(Path(tempfile.mkdtemp(prefix="swaparoony-watermark-")))
    opened = {spec.key: OpenedModel(*open_session(models / spec.relative_path, spec, (CPU,)), spec)
              for spec in (rivagan.ENCODER, rivagan.DECODER)}
    encoder = rivagan.FAMILY.build(opened[rivagan.ENCODER.key], RunOptions(watermark_payload=tuple(PAYLOAD)))
    decoder = rivagan.READER_FAMILY.build(opened[rivagan.DECODER.key], RunOptions())

    def mark(frame: np.ndarray) -> np.ndarray:  # as rivagan.watermarked does it, without the model service
        copy = small_copy(frame)
        (marked,) = encoder([copy])
        return add_change(frame.copy(), marked - copy.astype(np.float32))

    def read(frame: np.ndarray) -> tuple[int, int]:
        (logits,) = decoder([small_copy(frame)])
        bits = (logits > 0).astype(int)
        return int((bits == PAYLOAD).sum()), reading(logits).service_bits

    pictures = destinations()
    marked = [mark(picture) for picture in pictures]
    served = [jpeg(90)(with_face(picture, pictures[(i + 1) % len(pictures)])) for i, picture in enumerate(marked)]
    print(f"RivaGAN at {rivagan.ENCODER.input_size} px as the service runs it; {len(pictures)} photo destinations "
          f"{SIDE}x{SIDE}, marked at load, a face pasted, served as JPEG q90; found = {FOUND_AT}/{len(SERVICE_MARK)} "
          "service-mark bits or more\n")
    print(f"{'attack':<40}{'bits right':>11}{'fewest mark bits':>18}{'found':>7}")
    for name, attack in ATTACKS.items():
        reads = [read(attack(picture)) for picture in served]
        print(f"{name:<40}{statistics.mean(r[0] for r in reads) / 32:>10.1%} {min(r[1] for r in reads):>13}/24"
              f"{sum(r[1] >= FOUND_AT for r in reads):>5}/{len(reads)}")
    print(f"\nPSNR of the marked destination: {statistics.mean(psnr(m, p) for m, p in zip(marked, pictures)):.1f} dB (mean)")

    photos = unmarked(args.photos)
    reads = [(name, read(variant)[1]) for name, photo in photos for variant in variants(photo)]
    worst = max(reads, key=lambda r: r[1])
    print(f"false positives: {sum(bits >= FOUND_AT for _, bits in reads)} of {len(reads)} pictures from {len(photos)} "
          f"unmarked photos (most service-mark bits read from one: {worst[1]}/24, {worst[0]})")

    picture = pictures[0]
    for label, run in (("mark one 1280x1280 picture (copy, encoder, change added)", lambda: mark(picture)),
                       ("read one 1280x1280 picture (copy, decoder)", lambda: read(picture))):
        times = []
        for _ in range(args.repeats):
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
        print(f"{label}: {statistics.median(times) * 1e3:.0f} ms CPU (median of {args.repeats})")


if __name__ == "__main__":
    main()
