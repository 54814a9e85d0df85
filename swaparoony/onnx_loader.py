"""Open model files as ONNX Runtime sessions, checked against their specs before any request."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from .errors import AcceleratorUnavailable, ModelFileInvalid, ModelFileMissing
from .model_specs import LICENCE, ModelSpec

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


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
    lines.append(
        "Run `swaparoony models pull` (or `swaparoony models import --from DIR` for files you brought) and "
        "restart, or set SWAPAROONY_MODELS_DIR to where they are. " + LICENCE
    )
    raise ModelFileMissing("\n".join(lines))


def open_session(path: Path, spec: ModelSpec, providers: Sequence[str]) -> ort.InferenceSession:
    """Create a session, refuse a silent CPU fallback, and check the file's contract."""
    warn_if_not_release(path, spec)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as exc:  # ORT raises its own untyped errors for corrupt protobufs
        raise ModelFileInvalid(
            f"{path}: ONNX Runtime cannot load this file ({exc}). The file is probably corrupt or "
            f"truncated; download it again (expected {spec.size:,} bytes, SHA-256 {spec.sha256})."
        ) from exc
    actual = session.get_providers()
    logger.info("%s: ONNX Runtime providers %s", path.name, actual)
    if CUDA in providers and CUDA not in actual:
        raise AcceleratorUnavailable(
            f"{path}: CUDA was asked for but the session came up on {actual}. Check that "
            "onnxruntime-gpu (not onnxruntime) is installed and that the CUDA and cuDNN libraries it "
            "needs are visible; set SWAPAROONY_PROVIDERS=CPUExecutionProvider to run on CPU on purpose."
        )
    check_contract(path, spec, session)
    return session


def check_contract(path: Path, spec: ModelSpec, session: ort.InferenceSession) -> None:
    """Fail with the file's name when its inputs or outputs are not what the pipeline feeds and reads."""
    problems: list[str] = []
    for kind, expected, actual in (
        ("input", spec.inputs, session.get_inputs()),
        ("output", spec.outputs, session.get_outputs()),
    ):
        if [t.name for t in actual] != [t.name for t in expected]:
            problems.append(f"{kind}s are {[t.name for t in actual]}, expected {[t.name for t in expected]}")
            continue
        for want, got in zip(expected, actual):
            if not _shape_fits(want.shape, got.shape):
                problems.append(f"{kind} {want.name!r} has shape {got.shape}, expected {list(want.shape)}")
    if problems:
        raise ModelFileInvalid(f"{path}: not a {spec.relative_path} model: " + "; ".join(problems))


def _shape_fits(expected: tuple[int | None, ...], actual: Sequence[object]) -> bool:
    if len(expected) != len(actual):
        return False
    return all(want is None or got == want for want, got in zip(expected, actual))


def trailing_initializer(path: Path, spec: ModelSpec) -> np.ndarray:
    """Read the graph's last initializer (inswapper's emap) and check its shape."""
    model = onnx.load(str(path), load_external_data=False)
    if not model.graph.initializer:
        raise ModelFileInvalid(f"{path}: has no initializers, so no emap; not an inswapper model")
    array = numpy_helper.to_array(model.graph.initializer[-1])
    if spec.trailing_initializer_shape and array.shape != spec.trailing_initializer_shape:
        raise ModelFileInvalid(
            f"{path}: last initializer has shape {array.shape}, expected the "
            f"{spec.trailing_initializer_shape} emap of inswapper_128"
        )
    return array.astype(np.float32)


def warn_if_not_release(path: Path, spec: ModelSpec) -> None:
    """Log a warning when a file is not the known release file (re-exports exist and may still work)."""
    problem = file_mismatch(path, spec.size, spec.sha256)
    if problem:
        logger.warning("%s: %s (the release file); using it anyway", path, problem)


def file_mismatch(path: Path, size: int, sha256: str) -> str | None:
    """Why a file is not the expected one (size first, it is cheap; then SHA-256), or None when it is."""
    actual = path.stat().st_size
    if actual != size:
        return f"{actual:,} bytes, expected {size:,}"
    digest = sha256_of(path)
    return None if digest == sha256 else f"SHA-256 {digest}, expected {sha256}"


def sha256_of(path: Path) -> str:
    """Hash a file in 4 MiB chunks so a 550 MB model never sits in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def has_dynamic_batch(session: ort.InferenceSession) -> bool:
    """True when the first input's batch axis is free, so a whole batch can run as one call."""
    batch = session.get_inputs()[0].shape[0]
    return not isinstance(batch, int) or batch != 1
