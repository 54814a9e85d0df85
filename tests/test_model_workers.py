"""Several model workers (one per GPU on a multi-GPU node) and several API workers: each model worker loads its own
models and serves, API workers load none and share them, and on SIGTERM each model worker keeps serving until every
API worker has drained."""

from __future__ import annotations

import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from conftest import encode, start_server, stop_server, upload_image
from swaparoony.models.gpu_budget import default_model_workers, visible_gpus
from swaparoony.settings import Settings

UPLOAD = encode(upload_image())


def test_one_model_worker_per_visible_gpu_when_cuda_is_wanted() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2"}) == 3
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0 and visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == 0
    assert default_model_workers({"CUDA_VISIBLE_DEVICES": "0,1"}, cuda_wanted=True) == 2
    assert default_model_workers({"CUDA_VISIBLE_DEVICES": "0,1"}, cuda_wanted=False) == 1
    gpu_node = {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "SWAPAROONY_PROVIDERS": "CUDAExecutionProvider,CPUExecutionProvider"}
    assert Settings.from_env(gpu_node).model_workers == 4
    assert Settings.from_env({**gpu_node, "SWAPAROONY_PROVIDERS": "CPUExecutionProvider"}).model_workers == 1
    assert Settings.from_env({**gpu_node, "SWAPAROONY_MODEL_WORKERS": "2"}).model_workers == 2


def test_two_api_workers_share_two_model_workers_and_both_drain_on_sigterm(tmp_path: Path, models_dir: Path, gallery_dir: Path) -> None:
    running = start_server(tmp_path, {"SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(gallery_dir),
                                      "SWAPAROONY_MODEL_WORKERS": "2", "SWAPAROONY_API_WORKERS": "2"})
    try:
        def swap(_: int) -> int:
            return httpx.post(running.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, timeout=120).status_code

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(swap, range(8))) == [200] * 8
        log = running.log()
        assert "entry_service:swaparoony:1" in log and "entry_service:swaparoony:2" in log
        ready = re.findall(r"\[(\S+):(\d+)\].*models ready", log)
        assert sorted(ready) == [("service:swaparoony-models", "1"), ("service:swaparoony-models", "2")]  # no API worker
        os.kill(running.process.pid, signal.SIGTERM)
        assert running.process.wait(timeout=120) == 0
        drained = re.findall(r"\[service:swaparoony-models:(\d+)\].*model service: every API worker has drained", running.log())
        assert sorted(drained) == ["1", "2"]  # neither waited out the request timeout
    finally:
        stop_server(running.process)
