"""Shared fixtures: generated models, a synthetic gallery, and real BentoML servers on 127.0.0.1."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from PIL import Image

import generated_models
from generated_models import detector_model, draw_faces, recognizer_model, swapper_model, write_models
from serving import REPO, Server, SharedServer, metric, start_server, stop_server, wait_for
from swaparoony.models.arcface import RECOGNIZER
from swaparoony.models.inswapper import SWAPPER
from swaparoony.models.scrfd import DETECTOR

__all__ = ["REPO", "Server", "SharedServer", "metric", "start_server", "stop_server", "wait_for"]
ADMIN_TOKEN = "operator-token-for-tests-0123"
API_TOKEN = "kiosk-token-for-tests-0123456"
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
    """The generated model files in the layout InsightFace users have (a watermark encoder that marks nothing, so
    pixels outside a swap are the destination's own: tests/test_watermark.py serves the real one)."""
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


@pytest.fixture(scope="session")
def slow_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated models a request takes seconds on a CPU with: the real detector's and recognizer's compute, and a
    swapper of 58 GFLOPs a face (a third of inswapper's, in 28 MB where the full plan writes and loads 527 MB)."""
    directory = write_models(tmp_path_factory.mktemp("slow_models"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generated_models, "SWAPPER_COST", [(3, 256, 2, 1), (256, 256, 1, 12)])
        for spec, model in ((DETECTOR, detector_model(cost_faithful=True)), (RECOGNIZER, recognizer_model(cost_faithful=True)),
                            (SWAPPER, swapper_model(cost_faithful=True))):
            onnx.save(model, str(directory / spec.relative_path))
    return directory


@pytest.fixture(scope="session")
def operator_server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Server]:
    """Both tokens on a copy of the gallery the operator may change (it is left as it was found), 4 MiB uploads and
    2 MP pictures, the gallery polled every 0.2 s: the privacy, operator and Swagger operator tests share it."""
    directory = tmp_path_factory.mktemp("operator_gallery") / "destinations"
    shutil.copytree(gallery_dir, directory)
    running = start_server(tmp_path_factory.mktemp("operator"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(directory),
        "SWAPAROONY_GALLERY_POLL_S": "0.2", "SWAPAROONY_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
        "SWAPAROONY_MAX_PIXELS": "2000000", "SWAPAROONY_ADMIN_TOKEN": ADMIN_TOKEN, "SWAPAROONY_API_TOKEN": API_TOKEN,
    })
    yield running
    stop_server(running.process)


@pytest.fixture(scope="session")
def no_models_server(tmp_path_factory: pytest.TempPathFactory, gallery_dir: Path) -> Iterator[Server]:
    """The service started on an empty models directory (`workdir`/no_models): not ready, saying what to do. It proves
    the 503 a model service without its models gives; why a model file fails to load is checked in process."""
    workdir = tmp_path_factory.mktemp("no_models_server")
    (workdir / "no_models").mkdir()
    running = start_server(workdir, {"SWAPAROONY_MODELS_DIR": str(workdir / "no_models"),
                                     "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir)}, wait_ready=False)
    yield running
    stop_server(running.process)


@pytest.fixture(scope="session")
def unready_gallery(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[tuple[SharedServer, Path]]:
    """A server whose destinations path the tests set up (a file where the directory should be, a directory without a
    face...) before they get the server: /readyz tries the gallery again until it is usable, so one start serves
    several not-ready gallery states."""
    workdir = tmp_path_factory.mktemp("unready_gallery")
    destinations = workdir / "destinations"
    destinations.write_text("a file where the directory should be")
    shared = SharedServer(workdir, {"SWAPAROONY_MODELS_DIR": str(models_dir),
                                    "SWAPAROONY_DESTINATIONS_DIR": str(destinations)}, wait_ready=False)
    yield shared, destinations
    shared.close()
