"""Shared fixtures: generated models, a synthetic gallery, and real BentoML servers on 127.0.0.1."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from generated_models import draw_faces, write_models
from serving import REPO, Server, metric, start_server, stop_server, wait_for

__all__ = ["REPO", "Server", "metric", "start_server", "stop_server", "wait_for"]
UPLOAD_CENTERS = [(480, 320), (160, 320), (320, 160)]
"""Three faces on a 640x640 upload; left to right they are the 2nd, 3rd and 1st drawn."""
BOOTH_ORIGIN = "http://booth.example:8080"
UPLOAD_COLOURS = [(220, 190, 150), (150, 220, 190), (190, 150, 220)]


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    """BGR array to file bytes through OpenCV's real codecs."""
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


def decode(data: bytes) -> np.ndarray:
    """File bytes to a BGR array."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def upload_image() -> np.ndarray:
    """The standard three-face upload."""
    return draw_faces((640, 640), UPLOAD_CENTERS, colours=UPLOAD_COLOURS)


def pil_bytes(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Save a PIL image to bytes in the given format."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three generated model files in the layout InsightFace users have."""
    return write_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def gallery_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Destinations: one face, two faces at 1280x1280, no face, and an unreadable file."""
    directory = tmp_path_factory.mktemp("destinations")
    cv2.imwrite(str(directory / "one_face.jpg"), draw_faces((640, 640), [(320, 320)]))
    cv2.imwrite(str(directory / "two_faces.png"), draw_faces((1280, 1280), [(320, 640), (896, 640)], scale=2.0))
    cv2.imwrite(str(directory / "no_face.png"), np.full((300, 400, 3), 25, np.uint8))
    (directory / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return directory


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Server]:
    """The service on generated models and the synthetic gallery."""
    running = start_server(
        tmp_path_factory.mktemp("server"),
        # Re-batched as on a GPU, so every HTTP test runs the batch-1 models' free-batch copies.
        {"SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
         "SWAPAROONY_CORS_ORIGINS": BOOTH_ORIGIN, "SWAPAROONY_REBATCH": "on"},
    )
    yield running
    stop_server(running.process)
