"""The engine's ModelCalls over the model service: batched remote calls, or direct ones in-process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from swaparoony.errors import ServiceNotReady
from swaparoony.types import FaceSwapRequest, FaceSwapResult, ModelRun

logger = logging.getLogger("swaparoony")
MODEL_CALL_ATTEMPTS = 3


class BatchedFaceModels:
    """The engine's ModelCalls, calling the FaceModels service (remote and batched, or in-process); the core's
    request and result types travel as they are (model_wire.py)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    async def _call(self, name: str, batch: list[Any]) -> list[Any]:
        if not hasattr(self.service, "to_async"):
            return await asyncio.to_thread(getattr(self.service, name), batch)
        for attempt in range(MODEL_CALL_ATTEMPTS):
            try:
                return await getattr(self.service.to_async, name)(batch)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, RuntimeError, asyncio.CancelledError) as exc:
                if not _dropped_connection(exc):
                    raise
                # A keep-alive connection the model service closed as the call went out. Model calls are
                # idempotent: resend.
                if attempt == MODEL_CALL_ATTEMPTS - 1:
                    raise ServiceNotReady("The model service cannot be reached; retry shortly.") from exc
                logger.info("model service connection dropped (%s); retrying %s", type(exc).__name__, name)
        return []

    async def status(self) -> dict[str, Any]:
        """The model service's readiness and, when not ready, why."""
        if hasattr(self.service, "to_async"):
            return await self.service.to_async.status()
        return self.service.status()

    async def loaded(self) -> dict[str, list[str]]:
        """The file keys the model service loaded, by role."""
        if hasattr(self.service, "to_async"):
            return await self.service.to_async.loaded()
        return self.service.loaded()

    async def run(self, role: str, items: list[Any]) -> list[Any]:
        (answered,) = await self._call("run", [ModelRun(role, items)])
        return list(answered.answers)

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
        return await self._call("swap_faces", requests)


def _dropped_connection(exc: BaseException) -> bool:
    """Whether a model call failed because its connection went away, not because of the call."""
    if isinstance(exc, asyncio.CancelledError):
        # aiohttp hands a call waiting for a pooled connection a bare CancelledError when its session closes;
        # a real cancellation of this request is marked on the task and must go on.
        task = asyncio.current_task()
        return task is not None and not task.cancelling()
    if isinstance(exc, RuntimeError):
        return "Connection closed" in str(exc)  # aiohttp's report of a connection closed mid-body
    return True
