"""How many GPUs the model service can use, so a node with several runs one model worker on each."""

from __future__ import annotations

import logging
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def visible_gpus(env: Mapping[str, str]) -> int:
    """NVIDIA GPUs this process may use: CUDA_VISIBLE_DEVICES when it is set, else what NVML counts (a container
    sees only the GPUs it was given); 0 without a driver."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        devices = [d for d in listed.split(",") if d.strip()]
        return 0 if not devices or devices[0].strip() == "-1" else len(devices)
    try:
        import pynvml  # NVML counts devices without creating a CUDA context, so nothing forked later inherits one

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no library: no GPU
        return 0


def default_model_workers(env: Mapping[str, str], cuda_wanted: bool) -> int:
    """One model worker per visible GPU when CUDA is wanted, else one (on CPU a second copy only splits the cores)."""
    return max(1, visible_gpus(env)) if cuda_wanted else 1
