"""Open model files as ONNX Runtime sessions, checked against their specs before any request."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from ..errors import AcceleratorUnavailable, ModelFileInvalid, ModelFileMissing
from .contract import ModelLayout, OutputFinder, check_contract
from .specs import ModelSpec, licences

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
CUDA_OPTIONS = {"cudnn_conv_algo_search": "EXHAUSTIVE", "cudnn_conv_use_max_workspace": "1"}
"""ONNX Runtime's defaults today, pinned so a change of default cannot slow the service silently: cuDNN's
convolution algorithms are searched once per input shape (the pipeline's shapes are fixed: 640x640 canvases,
112 and 128 crops) with the workspace its fastest kernels need."""


def default_providers() -> tuple[str, ...]:
    """CUDA first when this onnxruntime build can use it, else CPU."""
    available = ort.get_available_providers()
    return (CUDA, CPU) if CUDA in available else (CPU,)


def require_files(models_dir: Path, specs: Sequence[ModelSpec]) -> None:
    """Raise one error that lists every missing file with its exact path and where to get it."""
    missing = [spec for spec in specs if not (models_dir / spec.relative_path).is_file()]
    if not missing:
        return
    lines = [f"model files missing under {models_dir.resolve()}:"]
    for spec in missing:
        lines.append(f"  {(models_dir / spec.relative_path).resolve()} (get it from {spec.sources[0].url})")
        lines += [f"    found {found.resolve()} instead: move it there (the layout is InsightFace's)"
                  for found in _elsewhere(models_dir, spec.relative_path)]
    lines.append(
        "Run `swaparoony models pull` (or `swaparoony models import --from DIR` for files you brought) and "
        "restart, or set SWAPAROONY_MODELS_DIR to where they are. " + licences(specs)
    )
    raise ModelFileMissing("\n".join(lines))


def _elsewhere(models_dir: Path, relative_path: str) -> list[Path]:
    """Files of the same name in the wrong folder (a bucket or volume filled flat), a few levels down at most."""
    name = Path(relative_path).name
    try:
        return [path for depth in ("", "*/", "*/*/") for path in models_dir.glob(depth + name) if path.is_file()][:3]
    except OSError:
        return []


def session_options() -> ort.SessionOptions:
    """Quiet sessions whose idle threads sleep: spinning threads burned about 3x the CPU they needed, taken
    from the API worker on small nodes."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def open_session(path: Path, spec: ModelSpec, providers: Sequence[str], find_outputs: OutputFinder | None = None,
                 model: bytes | None = None, device_id: int = 0) -> tuple[ort.InferenceSession, ModelLayout]:
    """A session (from the file, or from model bytes derived from it) on the given GPU when CUDA is asked for,
    checked against its role's contract (find_outputs: the family's own output discovery); a CUDA request that
    silently came up on CPU is refused."""
    cuda = {**CUDA_OPTIONS, "device_id": str(device_id)}
    try:
        session = ort.InferenceSession(model if model is not None else str(path), sess_options=session_options(),
                                       providers=[(p, cuda) if p == CUDA else p for p in providers])
    except Exception as exc:  # ORT raises its own untyped errors for corrupt protobufs
        if "Unsupported model IR version" in str(exc):
            raise ModelFileInvalid(
                f"{path}: ONNX Runtime {ort.__version__} cannot load this file ({exc}). The file is not corrupt: it was "
                "saved for a newer ONNX Runtime. Save it again with an older IR version, or use a newer onnxruntime."
            ) from exc
        expected = f" (expected {spec.size:,} bytes, SHA-256 {spec.sha256})" if spec.sha256 else ""
        raise ModelFileInvalid(
            f"{path}: ONNX Runtime cannot load this file ({exc}). The file is probably corrupt or "
            f"truncated; download it again{expected}."
        ) from exc
    actual = session.get_providers()
    logger.info("%s: ONNX Runtime providers %s", path.name, actual)
    if CUDA in providers and CUDA not in actual:
        raise AcceleratorUnavailable(
            f"{path.name}: CUDA was asked for but the session came up on {actual}. Check that "
            "onnxruntime-gpu (not onnxruntime) is installed and that the CUDA and cuDNN libraries it "
            "needs are visible; set SWAPAROONY_PROVIDERS=CPUExecutionProvider to run on CPU on purpose."
        )
    return session, check_contract(path, spec, session, find_outputs)


def parsed(path: Path, external_data: bool = True) -> onnx.ModelProto:
    """The file parsed as an ONNX graph, or ModelFileInvalid. onnx is imported here, not with this module: it costs
    0.65 s (most of it ml_dtypes) in every process that imports the service, and only a model worker re-batching a
    model or reading its emap parses a file."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=external_data)
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt protobuf
        raise ModelFileInvalid(f"{path}: cannot be parsed as an ONNX model ({exc})") from exc


def trailing_initializer(model: onnx.ModelProto, path: Path, spec: ModelSpec) -> np.ndarray:
    """The graph's last initializer (inswapper's emap), checked against its shape."""
    from onnx import numpy_helper  # here, not at import: see parsed()

    if not model.graph.initializer:
        raise ModelFileInvalid(f"{path}: has no initializers, so no emap; not an inswapper model")
    array = numpy_helper.to_array(model.graph.initializer[-1])
    if spec.trailing_initializer_shape and array.shape != spec.trailing_initializer_shape:
        raise ModelFileInvalid(
            f"{path}: last initializer has shape {array.shape}, expected the "
            f"{spec.trailing_initializer_shape} emap of inswapper_128"
        )
    return array.astype(np.float32)


def warn_if_not_release(path: Path, spec: ModelSpec, hash_of: Callable[[Path], str] | None = None) -> None:
    """Log a warning when a file is not the known release file (re-exports exist and may still work)."""
    if spec.sha256 is None or spec.size is None:
        logger.warning("%s: no release checksum is known for %s; checked by its contract only", path, spec.key)
        return
    problem = file_mismatch(path, spec.size, spec.sha256, hash_of)
    if problem:
        logger.warning("%s: %s (the release file); using it anyway", path, problem)


def file_mismatch(path: Path, size: int, sha256: str, hash_of: Callable[[Path], str] | None = None) -> str | None:
    """Why a file is not the expected one (size first, it is cheap; then SHA-256), or None when it is."""
    actual = path.stat().st_size
    if actual != size:
        return f"{actual:,} bytes, expected {size:,}"
    digest = (hash_of or sha256_of)(path)
    return None if digest == sha256 else f"SHA-256 {digest}, expected {sha256}"


def sha256_of(path: Path) -> str:
    """Hash a file in 4 MiB chunks so a 550 MB model never sits in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()

