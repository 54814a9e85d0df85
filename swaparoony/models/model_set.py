"""The three models loaded once, and the async interface the engine calls them through."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections import Counter
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import onnx
import onnxruntime as ort

from .batch_axis import disagreement, free_batch_copy, sample_inputs
from ..errors import ModelFileInvalid
from .scrfd import FaceDetector
from .arcface import FaceRecognizer
from .inswapper import FaceSwapper
from .cache import ModelCache
from .contract import ModelLayout
from .specs import DEFAULT_DETECTOR, ModelSpec, model_set
from .onnx_loader import (
    CUDA,
    default_providers,
    open_session,
    require_files,
    warn_if_not_release,
)
from ..imaging.colour_match import match_colour
from ..imaging.face_geometry import arcface_view, blend, crop_mask
from .pixel_boost import factor, tiles, untiled
from ..telemetry import ModelTelemetry, NoModelTelemetry
from ..types import FaceSwapRequest, FaceSwapResult, Frame, Latent, SwapItem

logger = logging.getLogger(__name__)
Rebatch = Literal["auto", "on", "off"]


class FaceModels(Protocol):
    """What the engine needs from the models; the service routes these through BentoML's batching."""

    async def detect(self, canvases: list[Frame]) -> list[np.ndarray]: ...

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]: ...


class ModelSet:
    """Detector, recognizer and swapper sessions, counting model runs (items, and session calls) for tests,
    benchmarks and /metrics."""

    def __init__(self, detector: FaceDetector, recognizer: FaceRecognizer, swapper: FaceSwapper,
                 telemetry: ModelTelemetry | None = None) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.swapper = swapper
        self.runs: Counter[str] = Counter()
        self.telemetry = telemetry or NoModelTelemetry()

    @classmethod
    def load(cls, models_dir: Path, providers: tuple[str, ...] | None, threshold: float,
             detector: str = DEFAULT_DETECTOR, rebatch: Rebatch = "auto", cache: ModelCache | None = None,
             device_id: int = 0) -> ModelSet:
        """Open the chosen detector, w600k_r50 and inswapper under models_dir (on GPU device_id when CUDA is
        chosen), each checked by its contract.

        rebatch: whether a batch-1 model gets a free-batch copy (auto: on CUDA, where batches pay; on CPU a
        batch costs what its items cost, and the check would cost seconds of start-up).
        """
        specs = model_set(detector)
        require_files(models_dir, specs)
        cache = cache or ModelCache(None)
        chosen = providers or default_providers()
        if CUDA in chosen and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from NVIDIA's pip wheels (onnxruntime-gpu[cuda,cudnn])
        logger.info("loading models from %s with providers %s%s", models_dir.resolve(), list(chosen),
                    f" on GPU {device_id}" if CUDA in chosen else "")
        batches = rebatch == "on" or (rebatch == "auto" and CUDA in chosen)
        loaded: dict[str, tuple[ort.InferenceSession, ModelLayout]] = {}
        emap = None
        for spec in specs:
            path = models_dir / spec.relative_path
            warn_if_not_release(path, spec, cache.sha256)
            session, layout = open_session(path, spec, chosen, device_id=device_id)
            parsed = _parse(path) if batches and not layout.batch_free else None  # the one parse, if any
            if spec.trailing_initializer_shape:
                emap = cache.emap(path, spec, parsed)
            if parsed is not None:
                copy = free_batch_copy(parsed).SerializeToString()
                del parsed  # one 554 MB copy of inswapper in Python at a time, not two
                session, layout = _batched(path, spec, chosen, session, layout, copy, device_id)
                del copy
            loaded[spec.role] = (session, layout)
        _return_freed_memory()
        detector_spec, recognizer_spec, swapper_spec = specs
        return cls(
            FaceDetector(*loaded["detector"], detector_spec, threshold),
            FaceRecognizer(*loaded["recognizer"], recognizer_spec, emap),  # type: ignore[arg-type]
            FaceSwapper(*loaded["swapper"], swapper_spec),
        )

    def detect(self, canvases: list[Frame]) -> list[np.ndarray]:
        """Faces per 640x640 canvas, as detector rows."""
        self._ran("detector", len(canvases), self.detector.layout)
        return self.detector.detect(canvases)

    def embed(self, crops: list[Frame]) -> list[Latent]:
        """Swapper-ready identity latents per aligned 112x112 crop."""
        return self.recognizer.latents(self._identities(crops))

    def swap(self, items: list[SwapItem]) -> list[Frame]:
        """Swapped 128x128 crops per item."""
        self._ran("swapper", len(items), self.swapper.layout)
        return self.swapper.swap(items)

    def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
        """Each request's source faces swapped into their targets, and how well each identity came through.

        Three batches for all the requests: one embedding of every source face, one swap of every tile of
        every target (a 128 crop is one tile, 256 four, 512 sixteen), one embedding of every result.
        """
        identities = self._identities([source for request in requests for source in request.sources])
        latents = self.recognizer.latents(identities)
        firsts = np.cumsum([0] + [len(request.sources) for request in requests])
        sources = [[int(first + pair) for pair in request.pairs] for request, first in zip(requests, firsts)]
        items = [SwapItem(tile, latents[source]) for request, chosen in zip(requests, sources)
                 for target, source in zip(request.targets, chosen) for tile in tiles(target)]
        swapped = iter(self.swap(items))
        crops = [[self._finished(untiled(np.stack([next(swapped) for _ in range(factor(target.shape[0]) ** 2)])),
                                 target, request.colour_match) for target in request.targets] for request in requests]
        results = self._identities([arcface_view(blend(crop, target, crop_mask(target.shape[0])))
                                    for request, done in zip(requests, crops) for crop, target in zip(done, request.targets)])
        similarity = iter(np.sum(results * identities[[s for chosen in sources for s in chosen]], axis=1).tolist())
        return [FaceSwapResult(done, [next(similarity) for _ in done]) for done in crops]

    @staticmethod
    def _finished(crop: Frame, target: Frame, colour_match: bool) -> Frame:
        return match_colour(crop, target, crop_mask(target.shape[0])) if colour_match else crop

    def _identities(self, crops: list[Frame]) -> np.ndarray:
        self._ran("recognizer", len(crops), self.recognizer.layout)
        return self.recognizer.identities(crops)

    def _ran(self, model: str, items: int, layout: ModelLayout) -> None:
        """Count a batch: its items, and the session calls it takes (one when the batch axis is free)."""
        if items:
            self.runs[model] += items
            self.telemetry.model_run(model, items, 1 if layout.batch_free else items)

    @property
    def providers(self) -> dict[str, list[str]]:
        """The providers each session actually runs on."""
        return {
            "detector": self.detector.session.get_providers(),
            "recognizer": self.recognizer.session.get_providers(),
            "swapper": self.swapper.session.get_providers(),
        }

    @property
    def batching(self) -> dict[str, bool]:
        """Whether each model runs a batch as one call."""
        return {"detector": self.detector.layout.batch_free, "recognizer": self.recognizer.layout.batch_free,
                "swapper": self.swapper.layout.batch_free}


def _return_freed_memory() -> None:
    """Hand the parse and the copies back to the system: glibc keeps freed heap for reuse, and the model
    service's resident memory would otherwise stay about 700 MB higher for its whole life after re-batching."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _parse(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt protobuf
        raise ModelFileInvalid(f"{path}: cannot be parsed as an ONNX model ({exc})") from exc


def _batched(path: Path, spec: ModelSpec, providers: tuple[str, ...], session: ort.InferenceSession,
             layout: ModelLayout, copy: bytes, device_id: int) -> tuple[ort.InferenceSession, ModelLayout]:
    """The free-batch copy's session if it agrees with the original, else the original (logged either way)."""
    try:
        batched, batched_layout = open_session(path, spec, providers, copy, device_id)
        why = None if batched_layout.batch_free else "its batch axis stayed fixed"
    except ModelFileInvalid as exc:
        why = f"the free-batch copy does not load ({exc})"
    if why is None:
        feeds = sample_inputs(spec, batched_layout.input_names)
        why = disagreement(session, batched, feeds, batched_layout.output_names)
    if why is not None:
        logger.warning("%s: runs batches item by item: %s", path.name, why)
        return session, layout
    logger.info("%s: runs batches as one call (free-batch copy checked against item-by-item runs)", path.name)
    return batched, batched_layout


class LocalFaceModels:
    """FaceModels over an in-process ModelSet, for the CLI, tests and benchmarks (no batching server)."""

    def __init__(self, model_set: ModelSet) -> None:
        self.model_set = model_set

    async def detect(self, canvases: list[Frame]) -> list[np.ndarray]:
        return await asyncio.to_thread(self.model_set.detect, canvases)

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
        return await asyncio.to_thread(self.model_set.swap_faces, requests)
