"""How the API service calls the model service when a pooled connection has been dropped."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import pytest

from http_api.model_client import MODEL_CALL_ATTEMPTS, BatchedFaceModels
from swaparoony.errors import ServiceNotReady


def proxy_failing(times: int, error: Exception | None = None) -> tuple[SimpleNamespace, list[int]]:
    """A stand-in for BentoML's remote proxy whose first calls hit a connection the server closed."""
    calls: list[int] = []

    async def detect(batch: list) -> list:
        calls.append(len(batch))
        if len(calls) <= times:
            raise error or aiohttp.ServerDisconnectedError()
        return ["rows"] * len(batch)

    return SimpleNamespace(to_async=SimpleNamespace(detect=detect)), calls


def test_a_dropped_keep_alive_connection_is_retried() -> None:
    proxy, calls = proxy_failing(times=1)
    assert asyncio.run(BatchedFaceModels(proxy).detect(["canvas"])) == ["rows"]
    assert calls == [1, 1]


def test_an_unreachable_model_service_is_503_not_500() -> None:
    proxy, calls = proxy_failing(times=99)
    with pytest.raises(ServiceNotReady, match="cannot be reached"):
        asyncio.run(BatchedFaceModels(proxy).detect(["canvas"]))
    assert len(calls) == MODEL_CALL_ATTEMPTS


def test_a_connection_closed_mid_response_is_retried() -> None:
    proxy, calls = proxy_failing(times=1, error=RuntimeError("Connection closed."))
    assert asyncio.run(BatchedFaceModels(proxy).detect(["canvas"])) == ["rows"]
    assert calls == [1, 1]


def test_other_runtime_errors_are_not_swallowed() -> None:
    proxy, calls = proxy_failing(times=1, error=RuntimeError("something else"))
    with pytest.raises(RuntimeError, match="something else"):
        asyncio.run(BatchedFaceModels(proxy).detect(["canvas"]))
    assert calls == [1]


def test_a_bare_cancelled_error_from_a_closed_pool_is_retried() -> None:
    # aiohttp's answer to a call waiting for a pooled connection when the session closes.
    proxy, calls = proxy_failing(times=1, error=asyncio.CancelledError())
    assert asyncio.run(BatchedFaceModels(proxy).detect(["canvas"])) == ["rows"]
    assert calls == [1, 1]


def test_a_real_cancellation_is_not_retried() -> None:
    started = asyncio.Event()

    async def detect(batch: list) -> list:
        started.set()
        await asyncio.sleep(60)
        return []

    async def cancel_mid_call() -> None:
        call = asyncio.ensure_future(BatchedFaceModels(SimpleNamespace(to_async=SimpleNamespace(detect=detect))).detect(["c"]))
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(asyncio.wait_for(cancel_mid_call(), 10))
