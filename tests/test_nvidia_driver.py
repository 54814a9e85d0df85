"""The start-up driver check: CUDA is refused, with the driver found, the driver needed and the ways out, unless the
node's NVIDIA driver can run the CUDA line onnxruntime-gpu was built for; and a model service that cannot start says why
on /readyz instead of "starting", and stays up rather than being restarted for nothing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from conftest import Server
from http_api.model_host import ModelHost
from http_api.serving import Serving
from swaparoony.errors import AcceleratorUnavailable
from swaparoony.models.nvidia_driver import DRIVER_FLOORS, Driver, parsed, read_driver, require_driver
from swaparoony.settings import Settings

CUDA_WANTED = {"SWAPAROONY_PROVIDERS": "CUDAExecutionProvider,CPUExecutionProvider"}
NO_NVML = read_driver().version is None


@pytest.mark.parametrize(("cuda", "found"), [("12.8", "525.60.13"), ("12.8", "535.104.05"), ("12.8", "1000.0"),
                                             ("13.0", "580.65.06"), ("13.0", "580.95.05"), ("13.0", "590.1")])
def test_a_driver_at_or_above_the_floor_may_run_cuda(cuda: str, found: str) -> None:
    require_driver(Driver(found, gpus=1), cuda)


def test_a_driver_below_the_cuda_13_floor_is_refused_naming_both_drivers_and_the_cuda_12_image() -> None:
    with pytest.raises(AcceleratorUnavailable) as refused:
        require_driver(Driver("570.172.08", gpus=1), "13.0")
    message = str(refused.value)
    assert "driver is 570.172.08" in message and "needs driver 580.65.06 or newer" in message
    assert "Upgrade the node's driver to 580.65.06" in message
    assert "deploy the image built for CUDA 12 (bentofile.yaml), which runs on drivers 525.60.13" in message
    assert "SWAPAROONY_PROVIDERS=CPUExecutionProvider" in message


def test_a_driver_below_the_cuda_12_floor_is_refused_and_told_the_cuda_13_image_needs_more() -> None:
    with pytest.raises(AcceleratorUnavailable) as refused:
        require_driver(Driver("525.60.12", gpus=1), "12.8")
    message = str(refused.value)
    assert "driver is 525.60.12" in message and "needs driver 525.60.13 or newer" in message
    assert "CUDA 13 (bentofile.cuda13.yaml) needs 580.65.06 or newer as well" in message


def test_versions_compare_by_number_not_by_text() -> None:
    assert parsed("535.104.05") > parsed("535.54.03") and parsed("1000.0") > parsed(DRIVER_FLOORS[13])
    assert parsed("525.60.13") == parsed(DRIVER_FLOORS[12])


def test_no_nvml_no_gpu_or_no_cuda_build_are_refused_with_the_way_to_cpu() -> None:
    for driver, cuda, why in ((Driver(None, unreadable="NVMLError_LibraryNotFound: NVML Shared Library Not Found"),
                               "12.8", "no NVIDIA driver answers in this container (NVML: NVMLError_LibraryNotFound"),
                              (Driver("550.54.15", gpus=0), "12.8", "NVIDIA driver 550.54.15 shows this container no GPU"),
                              (Driver("550.54.15", gpus=1), None, "onnxruntime is built without CUDA")):
        with pytest.raises(AcceleratorUnavailable) as refused:
            require_driver(driver, cuda)
        assert why in str(refused.value) and "SWAPAROONY_PROVIDERS=CPUExecutionProvider" in str(refused.value)


@pytest.mark.skipif(not NO_NVML, reason="this machine has an NVIDIA driver")
def test_a_model_worker_without_nvml_refuses_cuda_stays_up_and_readiness_says_why(
        models_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({**CUDA_WANTED, "SWAPAROONY_MODELS_DIR": str(models_dir)})
    with caplog.at_level(logging.ERROR):
        host = ModelHost(settings, worker_index=1, max_drain_s=1)  # no exception: no exit for BentoML to restart
    assert not host.ready and host.status()["cause"] == "accelerator"
    assert "no NVIDIA driver answers" in host.status()["problem"] and "CUDA refused" in caplog.text

    async def readiness() -> str | None:
        serving = Serving(settings)
        serving.start(host)  # the host answers its status in process, as the model service does over HTTP
        return await serving.readiness()

    reason = asyncio.run(readiness())
    assert reason is not None and reason.startswith("CUDA was asked for, but no NVIDIA driver answers")
    assert str(models_dir) not in reason


def test_a_model_service_that_does_not_answer_is_reported_with_how_often_it_was_asked() -> None:
    class Crashed:
        def status(self) -> dict[str, object]:
            raise AttributeError("'NoneType' object has no attribute 'status'")

    async def readiness() -> list[str | None]:
        serving = Serving(Settings.from_env({}))
        serving._model_service = Crashed()  # start() would also keep asking once a second
        return [await serving.readiness(), await serving.readiness()]

    first, second = asyncio.run(readiness())
    assert first is not None and "no answer to 1 tries" in first and "(last: AttributeError)" in first
    assert second is not None and "no answer to 2 tries" in second and "log says why it does not start" in second


def test_a_model_service_without_its_models_says_so_and_is_not_restarted(no_models_server: Server) -> None:
    ready = httpx.get(no_models_server.url + "/readyz")
    assert ready.status_code == 503 and "model files" in ready.json()["error"]
    assert "starting" not in ready.json()["error"]
    assert no_models_server.log().count("models unavailable; APIs answer 503") == 1  # one worker, started once
