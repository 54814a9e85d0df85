"""How the API service calls the model service: the core's types on the wire, and a pooled connection dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import numpy as np
import pytest
from _bentoml_impl.serde import Payload, PickleSerde
from _bentoml_sdk.io_models import IODescriptor

from http_api.model_client import MODEL_CALL_ATTEMPTS, BatchedFaceModels
from http_api.model_host import ModelHost
from http_api.model_wire import Carried
from swaparoony.errors import ServiceNotReady
from swaparoony.models.scrfd import letterbox
from swaparoony.settings import Settings
from swaparoony.types import Enhancement, FaceSwapRequest, FaceSwapResult, ModelAnswers, ModelRun


def swap_faces(requests: list[Carried[FaceSwapRequest]]) -> list[Carried[FaceSwapResult]]:
    """The model service's swap_faces signature, for BentoML to build its input and output models from."""
    return []


def over_the_wire(spec: type[IODescriptor], model: IODescriptor) -> IODescriptor:
    """Through BentoML's pickle serde, as a call between the services goes: serialized, joined, read back."""
    sent = PickleSerde().serialize_model(model)
    received = Payload([b"".join(bytes(chunk) for chunk in sent.data)], sent.metadata)
    return PickleSerde().deserialize_model(received, spec)


def test_the_cores_request_and_result_cross_between_the_services_as_they_are() -> None:
    """What model_wire.Carried relies on in BentoML 1.4.39: a schema it can build, and each dataclass rebuilt."""
    rng = np.random.default_rng(0)
    enhancement = Enhancement("codeformer", 0.8, 0.5, [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)],
                              [np.eye(2, 3, dtype=np.float32)])
    request = FaceSwapRequest([rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)],
                              [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(2)], [0, 0], True,
                              enhancement)
    result = FaceSwapResult([rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)], [0.5])
    inputs, outputs = IODescriptor.from_input(swap_faces), IODescriptor.from_output(swap_faces)
    assert inputs.model_json_schema()["properties"]["requests"]["items"] == {"type": "object"}
    assert outputs.mime_type() == "application/json"
    (got,) = over_the_wire(inputs, inputs.from_inputs([request])).requests  # type: ignore[attr-defined]
    assert isinstance(got, FaceSwapRequest) and (got.pairs, got.color_match) == ([0, 0], True)
    assert all(np.array_equal(a, b) for a, b in zip(got.sources + got.targets, request.sources + request.targets))
    assert isinstance(got.enhancement, Enhancement) and got.enhancement.enhancer == "codeformer"  # nested, rebuilt
    assert np.array_equal(got.enhancement.faces[0], enhancement.faces[0])
    (answer,) = over_the_wire(outputs, outputs([result])).root  # type: ignore[attr-defined, call-arg]
    assert isinstance(answer, FaceSwapResult) and answer.similarity == [0.5]
    assert np.array_equal(answer.crops[0], result.crops[0])
    assert len(PickleSerde().serialize_model(inputs.from_inputs([request])).data) == 6  # each array out of band


def run(runs: list[Carried[ModelRun]]) -> list[Carried[ModelAnswers]]:
    """The model service's run signature: any role's items, the same way for every role."""
    return []


def test_a_roles_items_and_answers_cross_between_the_services_as_they_are() -> None:
    canvas = np.random.default_rng(1).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    inputs, outputs = IODescriptor.from_input(run), IODescriptor.from_output(run)
    (got,) = over_the_wire(inputs, inputs.from_inputs([ModelRun("detector", [canvas])])).runs  # type: ignore[attr-defined]
    assert isinstance(got, ModelRun) and got.role == "detector" and np.array_equal(got.items[0], canvas)
    rows = np.ones((2, 15), np.float32)
    (answer,) = over_the_wire(outputs, outputs([ModelAnswers([rows])])).root  # type: ignore[attr-defined, call-arg]
    assert isinstance(answer, ModelAnswers) and np.array_equal(answer.answers[0], rows)


def proxy_failing(times: int, error: Exception | None = None) -> tuple[SimpleNamespace, list[int]]:
    """A stand-in for BentoML's remote proxy whose first calls hit a connection the server closed."""
    calls: list[int] = []

    async def run(batch: list[ModelRun]) -> list[ModelAnswers]:
        calls.append(len(batch))
        if len(calls) <= times:
            raise error or aiohttp.ServerDisconnectedError()
        return [ModelAnswers(["rows"] * len(call.items)) for call in batch]

    return SimpleNamespace(to_async=SimpleNamespace(run=run)), calls


def test_a_dropped_keep_alive_connection_is_retried() -> None:
    proxy, calls = proxy_failing(times=1)
    assert asyncio.run(BatchedFaceModels(proxy).run("detector", ["canvas"])) == ["rows"]
    assert calls == [1, 1]


def test_an_unreachable_model_service_is_503_not_500() -> None:
    proxy, calls = proxy_failing(times=99)
    with pytest.raises(ServiceNotReady, match="cannot be reached"):
        asyncio.run(BatchedFaceModels(proxy).run("detector", ["canvas"]))
    assert len(calls) == MODEL_CALL_ATTEMPTS


def test_a_connection_closed_mid_response_is_retried() -> None:
    proxy, calls = proxy_failing(times=1, error=RuntimeError("Connection closed."))
    assert asyncio.run(BatchedFaceModels(proxy).run("detector", ["canvas"])) == ["rows"]
    assert calls == [1, 1]


def test_other_runtime_errors_are_not_swallowed() -> None:
    proxy, calls = proxy_failing(times=1, error=RuntimeError("something else"))
    with pytest.raises(RuntimeError, match="something else"):
        asyncio.run(BatchedFaceModels(proxy).run("detector", ["canvas"]))
    assert calls == [1]


def test_a_bare_cancelled_error_from_a_closed_pool_is_retried() -> None:
    # aiohttp's answer to a call waiting for a pooled connection when the session closes.
    proxy, calls = proxy_failing(times=1, error=asyncio.CancelledError())
    assert asyncio.run(BatchedFaceModels(proxy).run("detector", ["canvas"])) == ["rows"]
    assert calls == [1, 1]


def test_a_real_cancellation_is_not_retried() -> None:
    started = asyncio.Event()

    async def run(batch: list) -> list:
        started.set()
        await asyncio.sleep(60)
        return []

    async def cancel_mid_call() -> None:
        call = asyncio.ensure_future(BatchedFaceModels(SimpleNamespace(to_async=SimpleNamespace(run=run))).run("detector", ["c"]))
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(asyncio.wait_for(cancel_mid_call(), 10))


def test_the_model_service_runs_a_roles_items_from_several_callers_as_one_batch(models_dir: Path) -> None:
    host = ModelHost(Settings(models_dir=models_dir), None, 1.0)
    assert host.loaded is not None
    batches: list[int] = []
    host.loaded.roles["detector"].count = lambda role, items, calls: batches.append(items)
    canvases = [letterbox(np.full((480, 640, 3), shade, np.uint8))[0] for shade in (0, 90, 180)]
    first, second = host.run([ModelRun("detector", canvases[:1]), ModelRun("detector", canvases[1:])])
    assert batches == [3] and [len(first.answers), len(second.answers)] == [1, 2]
    alone = host.loaded.run("detector", canvases)
    assert all(np.array_equal(a, b) for a, b in zip(first.answers + second.answers, alone))
    with pytest.raises(LookupError, match="no model is loaded as 'parser'"):
        host.run([ModelRun("parser", canvases[:1])])
