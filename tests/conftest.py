"""Shared fixtures: generated models, a synthetic gallery, and real BentoML servers on 127.0.0.1."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from generated_models import draw_faces, write_models

REPO = Path(__file__).resolve().parent.parent
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running `bentoml serve` and where to reach it."""

    url: str
    process: subprocess.Popen
    log_path: Path
    workdir: Path
    tmpdir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp: Path, env: dict[str, str], wait_ready: bool = True) -> Server:
    """Start the service from the repo, as the README does, and wait for /readyz (or just /livez)."""
    port = free_port()
    log_path = tmp / "server.log"
    # BentoML puts its Unix sockets in TMPDIR, and their paths must stay under 108 bytes.
    short_tmp = Path(tempfile.mkdtemp(prefix="sw-", dir="/tmp"))
    full_env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml_home"), "TMPDIR": str(short_tmp), **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "service:Swaparoony", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=full_env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    probe = "/readyz" if wait_ready else "/livez"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url + probe, timeout=2).status_code == 200:
                return Server(url, process, log_path, tmp, short_tmp)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"server not ready in time:\n{log_path.read_text()}")


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM the whole process group, then make sure it is gone."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[Server]:
    """The service on generated models and the synthetic gallery."""
    running = start_server(
        tmp_path_factory.mktemp("server"),
        {"SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
         "SWAPAROONY_CORS_ORIGINS": BOOTH_ORIGIN},
    )
    yield running
    stop_server(running.process)
