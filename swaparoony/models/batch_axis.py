"""A free-batch copy of a model exported with its batch axis fixed at 1, trusted only once it agrees with the original.

inswapper_128 and det_10g were exported with batch 1, so adaptive batching could only run their batches
item by item. Marking the batch axis free and letting Reshapes that pin it to 1 copy it instead (0
means "as in the input") re-batches most such graphs; a graph that folds the batch some other way is
caught by comparing the copy's batched run with the original's item-by-item runs on random inputs.

A rank-1 input (CodeFormer's `weight`, shape [1]) is one value for the whole call, not an item's: it keeps its size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from ..errors import ModelFileInvalid
from .contract import ModelLayout, OutputFinder
from .onnx_loader import open_session
from .specs import FREE, ModelSpec

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

BATCH_PARAM = "batch"
SAMPLE_BATCH = 3
TOLERANCE = 1e-3
"""Largest difference allowed, relative to the output's magnitude: batched kernels sum in another order."""


def free_batch_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with a symbolic batch axis on its inputs and outputs and no Reshape pinning it to 1 (changed in place)."""
    from onnx import numpy_helper  # here, not at import: see onnx_loader.parsed()

    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    for value in [*(i for i in graph.input if i.name not in initializers), *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) > 1 and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = BATCH_PARAM
    del graph.value_info[:]  # shapes inferred for batch 1 would contradict the new axis
    constants = {tensor.name: tensor for tensor in graph.initializer}
    constants |= {node.output[0]: node.attribute[0].t for node in graph.node
                  if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"}
    for index, node in enumerate(graph.node):
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            continue  # 0 would mean a zero-sized axis there
        shape = numpy_helper.to_array(constants[node.input[1]])
        if shape.ndim == 1 and shape.size and shape[0] == 1:
            freed = shape.copy()
            freed[0] = 0
            name = f"{node.input[1]}__free_batch_{index}"  # its own copy: the original may be shared
            graph.initializer.append(numpy_helper.from_array(freed, name))
            node.input[1] = name
    return model


SAMPLE_TYPES: dict[str, type[np.floating[Any]]] = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def sample_inputs(spec: ModelSpec, session: ort.InferenceSession, names: Sequence[str],
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of SAMPLE_BATCH items, shaped as the spec says (free sizes at the model's input size), typed as
    the session takes them; a per-call input (rank 1) gets one value in the middle of its range."""
    rng = np.random.default_rng(seed)
    types = {value.name: SAMPLE_TYPES.get(value.type, np.float32) for value in session.get_inputs()}
    feeds = {}
    for name, shape in zip(names, spec.inputs):
        if len(shape) == 1:
            feeds[name] = np.full(len(shape), 0.5, types[name])  # shape [1]
            continue
        full = [SAMPLE_BATCH] + [spec.input_size if d in (None, FREE) else d for d in shape[1:]]
        values = rng.standard_normal(full).astype(np.float32)
        if len(full) == 2:  # an embedding-like input: unit length, as the pipeline feeds it
            values /= np.linalg.norm(values, axis=1, keepdims=True)
        feeds[name] = values
    return feeds


def disagreement(original: ort.InferenceSession, batched: ort.InferenceSession, feeds: dict[str, np.ndarray],
                 output_names: Sequence[str]) -> str | None:
    """None when one batched run gives what item-by-item runs of the original give; else why not."""
    try:
        together = batched.run(list(output_names), feeds)
    except Exception as exc:  # ORT's errors are untyped; a graph that still pins the batch fails here
        return f"the free-batch copy cannot run a batch of {SAMPLE_BATCH} ({str(exc).splitlines()[0][:200]})"
    singles = [original.run(list(output_names), {k: v if v.ndim == 1 else v[i : i + 1] for k, v in feeds.items()})
               for i in range(SAMPLE_BATCH)]
    for position, name in enumerate(output_names):
        expected = [single[position] for single in singles]
        got = together[position].reshape(SAMPLE_BATCH, -1)
        want = np.stack([e.reshape(-1) for e in expected]) if all(e.size == expected[0].size for e in expected) else None
        if want is None or got.shape != want.shape:
            return f"output {name!r} has shape {list(together[position].shape)} for a batch, unlike its items"
        scale = max(1.0, float(np.abs(want).max()))
        worst = float(np.abs(got - want).max())
        if worst > TOLERANCE * scale:
            return f"output {name!r} differs from item-by-item runs by up to {worst:.3g}"
    return None


def batched_or_original(path: Path, spec: ModelSpec, find_outputs: OutputFinder | None, providers: tuple[str, ...],
                        original: tuple[ort.InferenceSession, ModelLayout], copy: bytes,
                        device_id: int) -> tuple[ort.InferenceSession, ModelLayout]:
    """The free-batch copy's session if it agrees with the original, else the original (logged either way)."""
    try:
        batched, batched_layout = open_session(path, spec, providers, find_outputs, copy, device_id)
        why = None if batched_layout.batch_free else "its batch axis stayed fixed"
    except ModelFileInvalid as exc:
        why = f"the free-batch copy does not load ({exc})"
    if why is None:
        feeds = sample_inputs(spec, batched, batched_layout.input_names)
        why = disagreement(original[0], batched, feeds, batched_layout.output_names)
    if why is not None:
        logger.warning("%s: runs batches item by item: %s", path.name, why)
        return original
    logger.info("%s: runs batches as one call (free-batch copy checked against item-by-item runs)", path.name)
    return batched, batched_layout
