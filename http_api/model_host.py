"""What a model service worker holds: the models it loaded for its GPU (or why it could not), and its drain on SIGTERM.

A worker that cannot load its models for a reason a restart cannot fix (no usable GPU, a driver too old for the CUDA
line, missing or corrupt files) stays up serving nothing but its status, which says why: exiting would only have
BentoML start it again every few seconds while /readyz could say no more than "starting".

service.py's FaceModels declares the batchable APIs and hands each batch to this host.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import bentoml

import bento_models
from swaparoony.errors import AcceleratorUnavailable, ModelsUnavailable
from swaparoony.models import swap_pipeline
from swaparoony.models.cache import ModelCache
from swaparoony.models.family import RunOptions
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.nvidia_driver import built_for_cuda, read_driver, require_driver
from swaparoony.models.onnx_loader import CUDA, default_providers
from swaparoony.provenance.watermark import payload
from swaparoony.settings import DEFAULT_MODELS_DIR, Settings
from swaparoony.types import FaceSwapRequest, FaceSwapResult, ModelAnswers, ModelRun

from .metrics import service_metrics
from .shutdown import CallCount, DrainMarks, drain_on_sigterm

logger = logging.getLogger("swaparoony")


class ModelHost:
    """One model worker's models: loaded once, pinned to the worker's GPU; calls counted so a drain can report them."""

    def __init__(self, settings: Settings, worker_index: int | None, max_drain_s: float) -> None:
        self.settings = settings
        self.max_drain_s = max_drain_s
        self.loaded: LoadedModels | None = None
        self.problem: str | None = None
        self.cause: str | None = None
        """Why the models are not loaded: "accelerator" (CUDA refused; problem is the reason, fit for clients) or
        "models" (problem names server paths, for the log only)."""
        self.drained = DrainMarks()
        self.drained.clear()
        self.answered = CallCount()
        models_dir = settings.models_dir or bento_models.stored_dir() or DEFAULT_MODELS_DIR
        device = ((worker_index or 1) - 1) % settings.model_workers  # BentoML counts workers from 1
        try:
            self.loaded = self._load(models_dir, device)
            logger.info("models ready, providers %s, batch as one call %s", self.loaded.providers, self.loaded.batching)
        except AcceleratorUnavailable as exc:  # never run a GPU deployment silently on CPU
            self.problem, self.cause = str(exc), "accelerator"
            logger.error("CUDA refused: this model service serves no model call until the cause is fixed and it is "
                         "restarted (a restart alone cannot fix it, so it does not exit to be restarted):\n%s", exc)
        except ModelsUnavailable as exc:
            self.problem, self.cause = str(exc), "models"
            logger.error("models unavailable; APIs answer 503 until fixed and restarted:\n%s", exc)

    def _load(self, models_dir: Path, device: int) -> LoadedModels:
        """The worker's models on its device; when CUDA is wanted, only after the node's driver was found fit for it."""
        settings = self.settings
        providers = settings.providers or default_providers()
        if CUDA in providers:
            require_driver(read_driver(), built_for_cuda())
        options = RunOptions(settings.detection_threshold, payload(settings.watermark_operator))
        loaded = LoadedModels.load(models_dir, providers, options, settings.model_choices, settings.rebatch,
                                   ModelCache(settings.state_dir), device)
        loaded.telemetry = service_metrics()
        return loaded

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    def keep_serving_while_the_api_drains(self) -> None:
        """On SIGTERM, answer model calls until every API worker has finished its in-flight requests (call from an
        async start-up hook)."""
        drain_on_sigterm(lambda: self.drained.count() >= self.settings.api_workers, lambda: self.answered.total,
                         self.max_drain_s)

    def status(self) -> dict[str, Any]:
        """Whether the models loaded, and if not, what to do about it."""
        providers = self.loaded.providers if self.loaded else {}
        return {"ready": self.loaded is not None, "problem": self.problem, "cause": self.cause, "providers": providers}

    def run(self, runs: list[ModelRun]) -> list[ModelAnswers]:
        """Each caller's answers from its role's model, every role's items in the batch run as one batch."""
        models = self._models()
        answers: list[list[Any]] = [[] for _ in runs]
        for role in dict.fromkeys(run.role for run in runs):
            mine = [index for index, run in enumerate(runs) if run.role == role]
            done = iter(models.run(role, [item for index in mine for item in runs[index].items]))
            for index in mine:
                answers[index] = [next(done) for _ in runs[index].items]
        self.answered.add(len(runs))
        return [ModelAnswers(answered) for answered in answers]

    def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
        """Per request, its source faces swapped into their destination crops, with each result's similarity."""
        done = swap_pipeline.swap_faces(self._models(), requests)
        self.answered.add(len(requests))
        return done

    def _models(self) -> LoadedModels:
        if self.loaded is None:
            raise bentoml.exceptions.ServiceUnavailable(self.problem or "models not loaded")
        return self.loaded
