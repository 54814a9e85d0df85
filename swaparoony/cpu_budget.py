"""How many CPUs this process may really use: its affinity, capped by a container's CPU quota (cgroup v2 or v1)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2

CGROUP = Path("/sys/fs/cgroup")
MAX_DEFAULT_API_WORKERS = 8


def available_cpus(cgroup: Path = CGROUP) -> int:
    """CPUs the scheduler lets this process run on, at most the pod's CPU limit (rounded up)."""
    cpus = len(os.sched_getaffinity(0))
    quota = _quota(cgroup)
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def default_api_workers(cgroup: Path = CGROUP) -> int:
    """Half the CPUs (the other half decodes, and feeds the model service), 1 to 8: 1 on 2 CPUs, 2 on a 4-CPU pod."""
    return max(1, min(MAX_DEFAULT_API_WORKERS, available_cpus(cgroup) // 2))


def one_opencv_thread() -> None:
    """Run each OpenCV call on its calling thread. The service already spreads its work over threads, requests
    and processes, and its OpenCV calls are small (a face box, a crop, one upload), so OpenCV's own pool only
    split them further and then spun in sched_yield waiting for more: 6.5% of the API worker's CPU (perf)."""
    cv2.setNumThreads(1)


def one_blas_thread() -> None:
    """Give the worker processes started from this one (BentoML's copy its environment) a single OpenBLAS thread,
    unless the operator chose otherwise. Their only BLAS calls are small products (the swapper's latents), after
    which OpenBLAS's idle threads spin: a third of the model service's CPU under load (perf), 12 ms a request.
    OpenBLAS reads this when NumPy loads, so it must be set before the workers start."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _quota(cgroup: Path) -> float | None:
    """CPUs the quota allows, or None when there is no quota."""
    try:
        limit, period = (cgroup / "cpu.max").read_text().split()[:2]  # cgroup v2: "max 100000" or "400000 100000"
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        pass
    try:
        limit_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())  # cgroup v1: -1 when unlimited
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        return None if limit_us <= 0 else limit_us / period_us
    except (OSError, ValueError):
        return None
