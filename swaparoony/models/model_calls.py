"""What the engine asks of the models, one call at a time (remote and batched in the service, direct in-process)."""

from __future__ import annotations

import asyncio
from typing import Protocol

import numpy as np

from ..types import FaceSwapRequest, FaceSwapResult, Frame
from .loaded_models import LoadedModels
from .swap_pipeline import swap_faces


class ModelCalls(Protocol):
    """The engine's two model calls; the service routes them through BentoML's batching (http_api/model_client.py).

    Named for what it is to the engine, calls it makes, apart from the BentoML service that answers them
    (service.FaceModels) and the sessions that run them (LoadedModels)."""

    async def detect(self, canvases: list[Frame]) -> list[np.ndarray]: ...

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]: ...


class LocalModelCalls:
    """ModelCalls answered by models loaded in this process, for tests and benchmarks (no batching server)."""

    def __init__(self, models: LoadedModels) -> None:
        self.models = models

    async def detect(self, canvases: list[Frame]) -> list[np.ndarray]:
        return await asyncio.to_thread(self.models.detect, canvases)

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
        return await asyncio.to_thread(swap_faces, self.models, requests)
