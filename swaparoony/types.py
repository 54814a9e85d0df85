"""Shared array aliases and value types, so every module speaks the same vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
"""An HxWx3 uint8 image in BGR order (OpenCV's order, which the models' pre-processing expects)."""

Landmarks5 = npt.NDArray[np.float32]
"""Five (x, y) points: left eye, right eye, nose, left mouth corner, right mouth corner."""

AffineMatrix = npt.NDArray[np.float64]
"""A 2x3 affine transform from frame coordinates to crop coordinates."""

Embedding = npt.NDArray[np.float32]
"""An L2-normalised ArcFace embedding: a face's identity, compared by cosine similarity."""

Latent = npt.NDArray[np.float32]
"""The swapper's identity input: an ArcFace embedding projected through inswapper's emap."""

Mask = npt.NDArray[np.float32]
"""An HxW float32 blend weight in [0, 1]."""


@dataclass(frozen=True)
class Face:
    """One detected face in frame coordinates."""

    bbox: tuple[float, float, float, float]
    landmarks: Landmarks5
    score: float

    def scaled(self, factor: float) -> Face:
        """The same face in an image `factor` times larger (from a reduced frame back to the file's pixels)."""
        left, top, right, bottom = self.bbox
        return Face((left * factor, top * factor, right * factor, bottom * factor), self.landmarks * factor, self.score)


@dataclass(frozen=True)
class DecodedImage:
    """An upright BGR frame, and how many of the file's pixels each of its pixels stands for."""

    frame: Frame
    scale: float = 1.0


@dataclass(frozen=True)
class ModelRun:
    """One caller's items for one role's model (the detector's canvases, a face parser's crops): what the model
    service batches the same way for every role."""

    role: str
    items: list[Any]


@dataclass(frozen=True)
class ModelAnswers:
    """One answer per item of a ModelRun, in its order."""

    answers: list[Any]


@dataclass(frozen=True)
class SwapItem:
    """One swapper run: an aligned 128x128 destination crop and the source identity."""

    crop: Frame
    latent: Latent


@dataclass(frozen=True)
class Enhancement:
    """A request's face enhancer and, per target, where its swapped crop goes in the enhancer's view.

    faces[i] is target i's destination face aligned to the enhancers' FFHQ 512 template, and from_crop[i] the warp of
    target i's crop into it: the swapped crop is placed in that view, restored, warped back and blended by `blend`.
    """

    enhancer: str
    """The enhancer file's key (face_enhancer.ENHANCERS)."""
    blend: float
    """0 to 1: how much of the restored face replaces the swapped one."""
    weight: float
    """CodeFormer's fidelity, 0 to 1; the other enhancers ignore it."""
    faces: list[Frame]
    from_crop: list[AffineMatrix]


@dataclass(frozen=True)
class FaceSwapRequest:
    """One request's model work: the aligned 112x112 source faces, and the destination crops they go into.

    Every target is aligned at the request's crop size (128, or 256 / 512 for pixel boost); pairs[i] is the
    index in sources of the face that goes into targets[i]. This and FaceSwapResult are what travel between the API
    and model services, as they are (http_api/model_wire.py).
    """

    sources: list[Frame]
    targets: list[Frame]
    pairs: list[int]
    color_match: bool = False
    enhancement: Enhancement | None = None


@dataclass(frozen=True)
class FaceSwapResult:
    """Per target: the swapped crop, and the cosine similarity of its identity to its source face's."""

    crops: list[Frame]
    similarity: list[float]
