"""What a model family is to the rest of the service, so a new one is its module and one line in registry.py.

A family module declares its files as data (specs.py's ModelSpec), how its outputs are found when a shape list
cannot say (contract.OutputFinder), and a BatchedModel: its pre-processing into input arrays and its
post-processing of the outputs. Running a batch is the same for every role: one session call where the batch
axis is free, else one call per item, counted by role for tests, benchmarks and /metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import cv2
import numpy as np
import onnxruntime as ort

from ..provenance.watermark import payload
from .contract import ModelLayout, OutputFinder
from .specs import ModelSpec

In = TypeVar("In")
Out = TypeVar("Out")
RunCounter = Callable[[str, int, int], None]
"""Told (role, items, session calls) after every batch."""
WhenPresent = Literal["never", "first", "every"]
"""Which of a family's files load without a choice: none, the first one present in its order, or every one present
(the face enhancers, each a per-request choice)."""


@dataclass(frozen=True)
class OpenedModel:
    """One file's session, checked against its contract, and the trailing initializer its spec asks for."""

    session: ort.InferenceSession
    layout: ModelLayout
    spec: ModelSpec
    initializer: np.ndarray | None = None


@dataclass(frozen=True)
class RunOptions:
    """The service's settings that families read when they are built."""

    detection_threshold: float = 0.5
    watermark_payload: tuple[int, ...] = payload(0)
    """The bits the watermark encoder hides: the service mark and the operator's identifier."""


class BatchedModel(ABC, Generic[In, Out]):
    """A family's loaded model: a batch of items in, one answer per item out."""

    def __init__(self, opened: OpenedModel) -> None:
        self.session = opened.session
        self.layout = opened.layout
        self.spec = opened.spec
        self.count: RunCounter = lambda role, items, calls: None

    def __call__(self, items: Sequence[In]) -> list[Out]:
        """One answer per item: pre-processed together, run as one batch, post-processed."""
        if not items:
            return []
        inputs = self.inputs(items)
        self.count(self.spec.role, len(items), 1 if self.layout.batch_free else len(items))
        return self.answers(self.run(inputs), len(items))

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The outputs in the layout's order, items along the first axis as the model gives them: one call where
        the batch axis is free, else item by item, each output's items joined."""
        names, count = list(self.layout.output_names), len(inputs[0])
        if self.layout.batch_free:
            return self.session.run(names, dict(zip(self.layout.input_names, inputs)))
        runs = [self.session.run(names, {name: array[i : i + 1] for name, array in zip(self.layout.input_names, inputs)})
                for i in range(count)]
        return [np.concatenate([run[position] for run in runs]) for position in range(len(names))]

    def blob(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """BGR images as the model's NCHW RGB float input, normalised as its spec says: the pre-processing every
        image model shares."""
        norm = self.spec.normalisation
        if isinstance(norm.mean, tuple) or isinstance(norm.std, tuple):  # per channel: OpenCV scales by one number
            blob = _blob(images, 1.0, 0.0)
            return (blob - np.array(norm.mean, np.float32).reshape(1, -1, 1, 1)) / np.array(norm.std, np.float32).reshape(1, -1, 1, 1)
        return _blob(images, 1.0 / norm.std, norm.mean)

    @abstractmethod
    def inputs(self, items: Sequence[In]) -> list[np.ndarray]:
        """The batch's input arrays, in the spec's input order."""

    @abstractmethod
    def answers(self, outputs: list[np.ndarray], count: int) -> list[Out]:
        """One answer per item from the batch's outputs."""


@dataclass(frozen=True)
class ModelFamily:
    """One kind of model: the files that can serve it, which one is used unless another is chosen, how its outputs are
    found, and how its BatchedModel is built from an opened file."""

    role: str
    files: Mapping[str, ModelSpec]
    default: str | None
    """The file used unless another is chosen; None for a family that is loaded only when chosen."""
    build: Callable[[OpenedModel, RunOptions], BatchedModel[Any, Any]]
    find_outputs: OutputFinder | None = None
    when_present: WhenPresent = "never"
    """Without a choice and without a default: which of its files load when they are in the models directory."""


def _blob(images: Sequence[np.ndarray], scale: float, mean: float) -> np.ndarray:
    # OpenCV's stubs take no list of uint8 arrays, which blobFromImages does take.
    return cv2.dnn.blobFromImages(list(images), scale, None, (mean,) * 3, swapRB=True)  # type: ignore[call-overload]
