"""The three models loaded once, and the async interface the engine calls them through."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from .face_detector import FaceDetector
from .face_recognizer import FaceRecognizer
from .face_swapper import FaceSwapper
from .model_specs import ALL_MODELS, DETECTOR, RECOGNIZER, SWAPPER
from .onnx_loader import CUDA, default_providers, open_session, require_files, trailing_initializer
from .types import Frame, Latent, SwapItem

logger = logging.getLogger(__name__)


class FaceModels(Protocol):
    """What the engine needs from the models; the service routes these through BentoML's batching."""

    async def detect(self, canvases: list[Frame]) -> list[np.ndarray]: ...

    async def embed(self, crops: list[Frame]) -> list[Latent]: ...

    async def swap(self, items: list[SwapItem]) -> list[Frame]: ...


class ModelSet:
    """Detector, recognizer and swapper sessions, with a count of model runs for tests and benchmarks."""

    def __init__(self, detector: FaceDetector, recognizer: FaceRecognizer, swapper: FaceSwapper) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.swapper = swapper
        self.runs: Counter[str] = Counter()

    @classmethod
    def load(cls, models_dir: Path, providers: tuple[str, ...] | None, threshold: float) -> ModelSet:
        """Open the three files under models_dir; only detection and recognition of buffalo_l are loaded."""
        require_files(models_dir, ALL_MODELS)
        chosen = providers or default_providers()
        if CUDA in chosen and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from NVIDIA's pip wheels (onnxruntime-gpu[cuda,cudnn])
        logger.info("loading models from %s with providers %s", models_dir.resolve(), list(chosen))
        detector = FaceDetector(open_session(models_dir / DETECTOR.relative_path, DETECTOR, chosen), threshold)
        swapper_path = models_dir / SWAPPER.relative_path
        swapper = FaceSwapper(open_session(swapper_path, SWAPPER, chosen))
        emap = trailing_initializer(swapper_path, SWAPPER)
        recognizer = FaceRecognizer(open_session(models_dir / RECOGNIZER.relative_path, RECOGNIZER, chosen), emap)
        return cls(detector, recognizer, swapper)

    def detect(self, canvases: list[Frame]) -> list[np.ndarray]:
        """Faces per 640x640 canvas, as detector rows."""
        self.runs["detect"] += len(canvases)
        return self.detector.detect(canvases)

    def embed(self, crops: list[Frame]) -> list[Latent]:
        """Swapper-ready identity latents per aligned 112x112 crop."""
        self.runs["embed"] += len(crops)
        return self.recognizer.embed(crops)

    def swap(self, items: list[SwapItem]) -> list[Frame]:
        """Swapped 128x128 crops per item."""
        self.runs["swap"] += len(items)
        return self.swapper.swap(items)

    @property
    def providers(self) -> dict[str, list[str]]:
        """The providers each session actually runs on."""
        return {
            "detector": self.detector.session.get_providers(),
            "recognizer": self.recognizer.session.get_providers(),
            "swapper": self.swapper.session.get_providers(),
        }


class LocalFaceModels:
    """FaceModels over an in-process ModelSet, for the CLI, tests and benchmarks (no batching server)."""

    def __init__(self, model_set: ModelSet) -> None:
        self.model_set = model_set

    async def detect(self, canvases: list[Frame]) -> list[np.ndarray]:
        return await asyncio.to_thread(self.model_set.detect, canvases)

    async def embed(self, crops: list[Frame]) -> list[Latent]:
        return await asyncio.to_thread(self.model_set.embed, crops)

    async def swap(self, items: list[SwapItem]) -> list[Frame]:
        return await asyncio.to_thread(self.model_set.swap, items)
