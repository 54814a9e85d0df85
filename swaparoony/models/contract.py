"""Checks a model file keeps its role's contract by structure (ranks, widths, sizes), and says how to feed it.

Inputs are matched by rank and checked against the spec's shapes; outputs too, unless the family finds them by
structure (SCRFD's, see scrfd.scrfd_outputs). A refused file gets one message naming the file and everything wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from ..errors import ModelFileInvalid
from .specs import FREE, ModelSpec, Shape

OutputFinder = Callable[[ort.InferenceSession, ModelSpec, list[str]], tuple[str, ...]]
"""A family's own output discovery: the output names in the order its adapter reads them, problems appended."""


@dataclass(frozen=True)
class ModelLayout:
    """How the adapter talks to one session: its input names in the spec's order, its outputs in the role's order."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    batch_free: bool
    """Whether every input's batch axis is free, so a batch runs as one call (a rank-1 input, such as CodeFormer's
    weight, is one value per call and has none)."""


def check_contract(path: Path, spec: ModelSpec, session: ort.InferenceSession,
                   find_outputs: OutputFinder | None = None) -> ModelLayout:
    """The session's layout, or ModelFileInvalid naming the file, its role and what does not fit."""
    problems: list[str] = []
    inputs, outputs = session.get_inputs(), session.get_outputs()
    ordered_inputs = _inputs_by_rank(inputs, spec, problems)
    for tensor, want in zip(ordered_inputs, spec.inputs):
        _check_shape("input", tensor.name, tensor.shape, want, problems)
    batched = [t for t in ordered_inputs if len(t.shape) > 1]
    batch_free = bool(batched) and all(not isinstance(t.shape[0], int) or t.shape[0] != 1 for t in batched)
    output_names = tuple(o.name for o in outputs)
    if find_outputs is not None and not problems:
        output_names = find_outputs(session, spec, problems)
    elif find_outputs is None:
        if len(outputs) != len(spec.outputs):
            problems.append(f"{len(outputs)} outputs, expected {len(spec.outputs)}")
        for tensor, want in zip(outputs, spec.outputs):
            _check_shape("output", tensor.name, tensor.shape, want, problems)
    if problems:
        raise ModelFileInvalid(f"{path}: not a usable {spec.role} like {spec.key}: " + "; ".join(problems))
    return ModelLayout(tuple(t.name for t in ordered_inputs), output_names, batch_free)


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


def _check_shape(kind: str, name: str, actual: Sequence[object], want: Shape, problems: list[str]) -> None:
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


def _shown(shape: Shape) -> list[object]:
    return ["batch" if i == 0 else ("any" if v in (None, FREE) else v) for i, v in enumerate(shape)]
