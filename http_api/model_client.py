"""The engine's FaceModels over the model service: batched remote calls, or direct ones in-process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import numpy as np

from swaparoony.errors import ServiceNotReady
from swaparoony.types import Frame, Latent, SwapItem

from .schemas import SwapBatchItem

logger = logging.getLogger("swaparoony")
MODEL_CALL_ATTEMPTS = 3


class BatchedFaceModels:
    """The engine's FaceModels, calling the model service (remote and batched, or in-process)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    async def _call(self, name: str, batch: list[Any]) -> list[Any]:
        if not hasattr(self.service, "to_async"):
            return await asyncio.to_thread(getattr(self.service, name), batch)
        for attempt in range(MODEL_CALL_ATTEMPTS):
            try:
                return await getattr(self.service.to_async, name)(batch)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, RuntimeError) as exc:
                if isinstance(exc, RuntimeError) and "Connection closed" not in str(exc):
                    raise  # aiohttp reports a connection closed mid-body as a bare RuntimeError
                # The model service closes idle keep-alive connections, so the first calls of a burst
                # after a quiet spell can land on a closing socket. Model calls are idempotent: resend.
                if attempt == MODEL_CALL_ATTEMPTS - 1:
                    raise ServiceNotReady(f"The model service cannot be reached ({exc}); retry shortly.") from exc
                logger.info("model service connection dropped (%s); retrying %s", type(exc).__name__, name)
        return []

    async def status(self) -> dict[str, Any]:
        """The model service's readiness and, when not ready, why."""
        if hasattr(self.service, "to_async"):
            return await self.service.to_async.status()
        return self.service.status()

    async def detect(self, canvases: list[Frame]) -> list[np.ndarray]:
        return await self._call("detect", canvases)

    async def embed(self, crops: list[Frame]) -> list[Latent]:
        return await self._call("embed", crops)

    async def swap(self, items: list[SwapItem]) -> list[Frame]:
        return await self._call("swap", [SwapBatchItem(crop=i.crop, latent=i.latent) for i in items])
