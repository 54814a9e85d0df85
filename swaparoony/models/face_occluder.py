"""XSeg face occluders, the family that finds what covers a face (a hand, a microphone, a fringe), so that a swap
leaves it in front of the face.

The contract, as FaceFusion runs these files: the aligned crop resized to 256, BGR /255, NHWC [1,256,256,3] in; one
channel out, [1,256,256,1], 1 where the face shows and 0 where something covers it, clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..types import Frame, Mask
from .family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from .specs import BATCH, ModelSpec, Normalisation, facefusion_sources

ROLE = "face_occluder"
OCCLUDER_SIZE = 256


def _occluder(key: str, release: str) -> ModelSpec:
    return ModelSpec(key=key, role=ROLE, relative_path=f"{key}.onnx", size=None, sha256=None,
                     sources=facefusion_sources(release, f"{key}.onnx"), input_size=OCCLUDER_SIZE,
                     normalisation=Normalisation(0.0, 255.0), inputs=((BATCH, OCCLUDER_SIZE, OCCLUDER_SIZE, 3),),
                     outputs=((BATCH, OCCLUDER_SIZE, OCCLUDER_SIZE, 1),),
                     licence=f"{key} (DeepFaceLab's XSeg): GPL-3.0 weights.")


OCCLUDERS = {spec.key: spec for spec in (_occluder("xseg_1", "models-3.1.0"), _occluder("xseg_2", "models-3.1.0"),
                                         _occluder("xseg_3", "models-3.2.0"))}
"""In order of preference: the first one present is loaded."""


class FaceOccluder(BatchedModel[Frame, Mask]):
    """Finds what covers aligned BGR crops of any size: one 256x256 visibility mask per crop."""

    def inputs(self, crops: Sequence[Frame]) -> list[np.ndarray]:
        sized = [cv2.resize(crop, (OCCLUDER_SIZE, OCCLUDER_SIZE)) for crop in crops]
        return [np.stack(sized).astype(np.float32) / np.float32(255.0)]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[Mask]:
        return list(np.clip(outputs[0][..., 0], 0.0, 1.0).astype(np.float32))


def _build(opened: OpenedModel, options: RunOptions) -> FaceOccluder:
    return FaceOccluder(opened)


FAMILY = ModelFamily(ROLE, OCCLUDERS, None, _build, when_present="first")
