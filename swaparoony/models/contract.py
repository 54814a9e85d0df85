"""Checks a model file keeps its role's contract by structure (ranks, widths, sizes), and says how to feed it.

A refused file gets one message naming the file and everything wrong with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ModelFileInvalid
from .specs import FREE, SCRFD_OUTPUTS, SCRFD_STRIDES, ModelSpec


@dataclass(frozen=True)
class ModelLayout:
    """How the adapter talks to one session: its input names in the spec's order, its outputs in the role's order."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    batch_free: bool
    """Whether every input's batch axis is free, so a batch runs as one call."""
    anchors_per_cell: int = 0
    """SCRFD only: anchors per feature-map cell, read from the output sizes."""


def check_contract(path: Path, spec: ModelSpec, session: ort.InferenceSession) -> ModelLayout:
    """The session's layout, or ModelFileInvalid naming the file, its role and what does not fit."""
    problems: list[str] = []
    inputs, outputs = session.get_inputs(), session.get_outputs()
    ordered_inputs = _inputs_by_rank(inputs, spec, problems)
    for tensor, want in zip(ordered_inputs, spec.inputs):
        _check_shape("input", tensor.name, tensor.shape, want, problems)
    batch_free = bool(ordered_inputs) and all(not isinstance(t.shape[0], int) or t.shape[0] != 1 for t in ordered_inputs)
    anchors, output_names = 0, tuple(o.name for o in outputs)
    if spec.role == "detector" and not problems:
        output_names, anchors = _scrfd_outputs(session, spec, problems)
    elif spec.role != "detector":
        if len(outputs) != len(spec.outputs):
            problems.append(f"{len(outputs)} outputs, expected {len(spec.outputs)}")
        for tensor, want in zip(outputs, spec.outputs):
            _check_shape("output", tensor.name, tensor.shape, want, problems)
    if problems:
        raise ModelFileInvalid(f"{path}: not a usable {spec.role} like {spec.key}: " + "; ".join(problems))
    return ModelLayout(tuple(t.name for t in ordered_inputs), output_names, batch_free, anchors)


def _inputs_by_rank(inputs: Sequence[ort.NodeArg], spec: ModelSpec, problems: list[str]) -> list[ort.NodeArg]:
    """The inputs in the spec's order, matched by rank (inswapper exports differ in target/source order)."""
    if len(inputs) != len(spec.inputs):
        problems.append(f"{len(inputs)} inputs, expected {len(spec.inputs)}")
        return []
    ordered = []
    for want in spec.inputs:
        match = [tensor for tensor in inputs if len(tensor.shape) == len(want) and tensor not in ordered]
        if not match:
            problems.append(f"no {len(want)}-D input (expected shape {_shown(want)})")
            return []
        ordered.append(match[0])
    return ordered


def _check_shape(kind: str, name: str, actual: Sequence[object], want: tuple[int | None, ...], problems: list[str]) -> None:
    if len(actual) != len(want):
        problems.append(f"{kind} {name!r} has shape {list(actual)}, expected {_shown(want)}")
        return
    batch, *rest = actual
    if isinstance(batch, int) and batch != 1:
        problems.append(f"{kind} {name!r} has a batch axis of {batch}; it must be 1 or free")
    for got, expected in zip(rest, want[1:]):
        if expected not in (None, FREE) and isinstance(got, int) and got != expected:
            problems.append(f"{kind} {name!r} has shape {list(actual)}, expected {_shown(want)}")
            return


def _scrfd_outputs(session: ort.InferenceSession, spec: ModelSpec, problems: list[str]) -> tuple[tuple[str, ...], int]:
    """Find scores, boxes and landmarks per stride by width and size, from one run on a blank canvas."""
    outputs = session.get_outputs()
    probe = np.zeros((1, 3, spec.input_size, spec.input_size), np.float32)
    shapes = [result.shape for result in session.run(None, {session.get_inputs()[0].name: probe})]
    widths = [shape[-1] if len(shape) in (2, 3) else None for shape in shapes]
    if None in widths:
        problems.append(f"outputs have shapes {[list(s) for s in shapes]}; SCRFD's are [anchors, width] or [batch, anchors, width]")
        return (), 0
    if len(outputs) == 6 and SCRFD_OUTPUTS["landmarks"] not in widths:
        problems.append("it has no landmark outputs; swapping needs an SCRFD detector with 5-point landmarks (kps)")
        return (), 0
    ordered: list[str] = []
    counts: dict[str, list[int]] = {}
    for kind, width in SCRFD_OUTPUTS.items():
        found = sorted((i for i, w in enumerate(widths) if w == width), key=lambda i: -int(np.prod(shapes[i][:-1])))
        if len(found) != len(SCRFD_STRIDES):
            problems.append(f"{len(found)} outputs {width} wide ({kind}), expected {len(SCRFD_STRIDES)} (one per stride)")
            return (), 0
        ordered += [outputs[i].name for i in found]
        counts[kind] = [int(np.prod(shapes[i][:-1])) for i in found]
    cells = [(spec.input_size // stride) ** 2 for stride in SCRFD_STRIDES]
    anchors = {count // cell for count, cell in zip(counts["scores"], cells) if count % cell == 0}
    if len(anchors) != 1 or any(counts[kind] != counts["scores"] for kind in counts):
        problems.append(f"output sizes {counts} do not fit strides {SCRFD_STRIDES} at {spec.input_size}x{spec.input_size}")
        return (), 0
    return tuple(ordered), anchors.pop()


def _shown(shape: tuple[int | None, ...]) -> list[object]:
    return ["batch" if i == 0 else ("any" if v in (None, FREE) else v) for i, v in enumerate(shape)]
