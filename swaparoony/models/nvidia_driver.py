"""Whether this node's NVIDIA driver can run the CUDA line onnxruntime-gpu was built for, read through NVML before any
CUDA context exists, so a GPU deployment on the wrong driver is refused with the reason and the ways out."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import AcceleratorUnavailable

logger = logging.getLogger(__name__)

Version = tuple[int, ...]

DRIVER_FLOORS: dict[int, str] = {12: "525.60.13", 13: "580.65.06"}
"""The oldest Linux driver each CUDA major runs on with its cuDNN 9: NVIDIA's minor version compatibility table (CUDA
12.x >= 525, 13.x >= 580) and cuDNN 9's support matrix (525.60.13 for CUDA 12.x, 580.65.06 for 13.x)."""

BENTOFILES: dict[int, str] = {12: "bentofile.yaml", 13: "bentofile.cuda13.yaml"}
"""The bentofile whose image carries each CUDA line."""

CPU_ON_PURPOSE = "set SWAPAROONY_PROVIDERS=CPUExecutionProvider to run on CPU on purpose"


@dataclass(frozen=True)
class Driver:
    """What NVML says of the node: the driver's version and how many GPUs this container sees, or why it cannot say."""

    version: str | None
    gpus: int = 0
    unreadable: str = ""


def read_driver() -> Driver:
    """The driver through NVML (no CUDA context, so nothing forked later inherits one)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
            gpus = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # no libnvidia-ml.so.1, no driver loaded, no pynvml
        return Driver(None, unreadable=f"{type(exc).__name__}: {exc}")
    return Driver(version.decode() if isinstance(version, bytes) else str(version), gpus)


def built_for_cuda() -> str | None:
    """The CUDA version the installed onnxruntime was built for (e.g. '12.8'), or None for a build without CUDA."""
    try:
        from onnxruntime.capi import build_and_package_info
    except ImportError:
        return None
    return getattr(build_and_package_info, "cuda_version", None) or None


def parsed(version: str) -> Version:
    """'535.104.05' as (535, 104, 5), so versions compare by number, not by text."""
    return tuple(int(part) for part in version.strip().split(".") if part.isdigit())


def require_driver(driver: Driver, cuda: str | None) -> None:
    """Raise AcceleratorUnavailable, naming what was found, what is needed and the ways out, unless CUDA can run."""
    if driver.version is None:
        raise AcceleratorUnavailable(
            f"CUDA was asked for, but no NVIDIA driver answers in this container (NVML: {driver.unreadable}). "
            f"Run it on a GPU node with a GPU given to the pod (nvidia.com/gpu), or {CPU_ON_PURPOSE}.")
    if driver.gpus == 0:
        raise AcceleratorUnavailable(
            f"CUDA was asked for, but NVIDIA driver {driver.version} shows this container no GPU. Give the pod a GPU "
            f"(nvidia.com/gpu; check CUDA_VISIBLE_DEVICES), or {CPU_ON_PURPOSE}.")
    if cuda is None:
        raise AcceleratorUnavailable(
            "CUDA was asked for, but the installed onnxruntime is built without CUDA. Install onnxruntime-gpu (the GPU "
            f"image, or RUNTIME=gpu make install), or {CPU_ON_PURPOSE}.")
    major = parsed(cuda)[0]
    needed = DRIVER_FLOORS.get(major)
    if needed is not None and parsed(driver.version) < parsed(needed):
        raise AcceleratorUnavailable(
            f"CUDA was asked for, but this node's NVIDIA driver is {driver.version} and this image's onnxruntime-gpu "
            f"is built for CUDA {cuda}, which needs driver {needed} or newer. Upgrade the node's driver to {needed} or "
            f"newer, {_other_line(major, driver.version)}; or {CPU_ON_PURPOSE}.")
    logger.info("NVIDIA driver %s, %d GPU(s) visible; onnxruntime-gpu built for CUDA %s (needs driver %s or newer)",
                driver.version, driver.gpus, cuda, needed or "unknown")


def _other_line(major: int, found: str) -> str:
    """The second way out: the image for the other CUDA line, and whether it runs on the driver found."""
    other = next(m for m in DRIVER_FLOORS if m != major)
    image = f"the image built for CUDA {other} ({BENTOFILES[other]})"
    if parsed(found) >= parsed(DRIVER_FLOORS[other]):
        return f"or deploy {image}, which runs on drivers {DRIVER_FLOORS[other]} and newer"
    return f"since {image} needs {DRIVER_FLOORS[other]} or newer as well"
