"""What the engine asks of the models, one call at a time (remote and batched in the service, direct in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..types import FaceSwapRequest, FaceSwapResult
from .loaded_models import LoadedModels
from .swap_pipeline import swap_faces

Loaded = Mapping[str, Sequence[str]]
"""The file keys the model service loaded, by role: which enhancers, parser and occluder the API may offer."""


class ModelCalls(Protocol):
    """The engine's model calls: a batch of items for any role's model (the same for every role, so a new family's
    model is called without a new method), and the swap pipeline; the service routes both through BentoML's batching
    (http_api/model_client.py).

    Named for what it is to the engine, calls it makes, apart from the BentoML service that answers them
    (service.FaceModels) and the sessions that run them (LoadedModels)."""

    async def run(self, role: str, items: list[Any]) -> list[Any]: ...

    async def loaded(self) -> Loaded: ...

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]: ...


class LocalModelCalls:
    """ModelCalls answered by models loaded in this process, for tests and benchmarks (no batching server)."""

    def __init__(self, models: LoadedModels) -> None:
        self.models = models

    async def run(self, role: str, items: list[Any]) -> list[Any]:
        return await asyncio.to_thread(self.models.run, role, items)

    async def loaded(self) -> Loaded:
        return self.models.files()

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
        return await asyncio.to_thread(swap_faces, self.models, requests)
