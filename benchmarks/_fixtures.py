"""Shared benchmark set-up: the generated models, a gallery, uploads, and the test suite's server helpers."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from generated_models import draw_faces, write_models  # noqa: E402
from serving import Server, start_server, stop_server  # noqa: E402

PROVIDERS = [p.strip() for p in os.environ.get("SWAPAROONY_PROVIDERS", "CPUExecutionProvider").split(",") if p.strip()]
"""The providers a model service would be given (SWAPAROONY_PROVIDERS, default CPU)."""

__all__ = ["PROVIDERS", "Server", "start_server", "stop_server", "draw_faces", "write_models", "gallery", "upload", "percentiles"]


def gallery(directory: Path, count: int = 2, size: int = 1280) -> Path:
    """Destinations of size x size with two faces each, findable by the generated detector."""
    directory.mkdir(parents=True, exist_ok=True)
    scale = size / 640
    for i in range(count):
        centers = [(int(160 * scale), int(320 * scale)), (int(448 * scale), int(320 * scale))]
        cv2.imwrite(str(directory / f"portrait_{i}.png"), draw_faces((size, size), centers, scale=scale))
    return directory


def upload(faces: int = 2) -> bytes:
    """A 640x640 JPEG selfie with the given number of faces."""
    centers = [(160, 320), (480, 320), (320, 160)][:faces]
    ok, buffer = cv2.imencode(".jpg", draw_faces((640, 640), centers), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return buffer.tobytes()


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95 and p99 in the values' unit."""
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": statistics.median(ordered), "p95": pick(0.95), "p99": pick(0.99)}
