"""The two pipelines the benchmarks compare, built in one process on the same model files."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from insightface.app import FaceAnalysis
from insightface.model_zoo import get_model

from swaparoony.engine import SwapEngine, SwapOptions
from swaparoony.models.arcface import RECOGNIZER
from swaparoony.models.inswapper import SWAPPER
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.model_calls import LocalModelCalls
from swaparoony.models.scrfd import DETECTOR
from swaparoony.settings import Settings



LOOP = asyncio.new_event_loop()
"""One event loop for every run, as a server has: a loop (and its thread pool) per call would be timed too."""


def ours(models_dir: Path, destinations_dir: Path) -> tuple[SwapEngine, LoadedModels]:
    """Swaparoony's engine, in-process (no HTTP), with its model-run counter."""
    loaded = LoadedModels.load(models_dir, tuple(PROVIDERS))
    settings = Settings(models_dir=models_dir, destinations_dir=destinations_dir)
    return LOOP.run_until_complete(SwapEngine.start(LocalModelCalls(loaded), settings)), loaded


def swap_like_ours(engine: SwapEngine, upload: bytes) -> list[str]:
    """One request through our engine, ending in base64 JPEGs as the API sends them."""
    outcome = LOOP.run_until_complete(engine.swap(upload, SwapOptions(output_format="jpeg")))
    return [base64.b64encode(image.data).decode() for image in outcome.swapped]


class OriginalPipeline:
    """How the original service worked: FaceAnalysis.get on the upload once per destination and on every
    destination on every request, INSwapper.get(paste_back=True), then cv2 JPEG and base64."""

    def __init__(self, models_dir: Path, destinations_dir: Path) -> None:
        root = Path(tempfile.mkdtemp(prefix="insightface-root-"))
        pack = root / "models" / "buffalo_l"
        pack.mkdir(parents=True)
        for spec in (DETECTOR, RECOGNIZER):
            (pack / Path(spec.relative_path).name).symlink_to((models_dir / spec.relative_path).resolve())
        self.app = FaceAnalysis(name="buffalo_l", root=str(root), allowed_modules=["detection", "recognition"],
                                providers=PROVIDERS)
        self.app.prepare(ctx_id=-1, det_size=(640, 640))
        self.swapper = get_model(str(models_dir / SWAPPER.relative_path), providers=PROVIDERS)
        self.destinations = [cv2.imread(str(p)) for p in sorted(destinations_dir.iterdir())]
        self._root = root

    def swap(self, upload: bytes, source_face_id: int = 1, destination_face_id: int = 1) -> list[str]:
        image = cv2.imdecode(np.frombuffer(upload, np.uint8), cv2.IMREAD_COLOR)
        results = []
        for destination in self.destinations:
            source = sorted(self.app.get(image), key=lambda f: f.bbox[0])[source_face_id - 1]
            target = sorted(self.app.get(destination), key=lambda f: f.bbox[0])[destination_face_id - 1]
            swapped = self.swapper.get(destination, target, source, paste_back=True)
            ok, buffer = cv2.imencode(".jpg", swapped)
            results.append(base64.b64encode(buffer.tobytes()).decode())
        return results

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)
