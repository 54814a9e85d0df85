"""BiSeNet face parsers, the family that labels a face's regions (skin, brows, eyes, glasses, nose, mouth, lips), so
that a swap can leave what is not face (glasses, say) as the destination has it.

The contract, as FaceFusion runs these files: the aligned destination crop resized to 512, RGB /255 with ImageNet's
mean and std, NCHW [1,3,512,512] in; 19 class logits per pixel out, [1,19,512,512].
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from ..types import Frame
from .family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from .specs import BATCH, ModelSpec, Normalisation, facefusion_sources

ROLE = "face_parser"
PARSER_SIZE = 512
CLASSES = 19
REGIONS = {"skin": 1, "left-eyebrow": 2, "right-eyebrow": 3, "left-eye": 4, "right-eye": 5, "glasses": 6, "nose": 10,
           "mouth": 11, "upper-lip": 12, "lower-lip": 13}
"""FaceFusion's region names and the parser's class numbers for them."""
IMAGENET = Normalisation((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255))
Labels = npt.NDArray[np.uint8]
"""A 512x512 map of class numbers, one per pixel of the crop the parser saw."""


def _parser(key: str, release: str) -> ModelSpec:
    return ModelSpec(key=key, role=ROLE, relative_path=f"{key}.onnx", size=None, sha256=None,
                     sources=facefusion_sources(release, f"{key}.onnx"), input_size=PARSER_SIZE, normalisation=IMAGENET,
                     inputs=((BATCH, 3, PARSER_SIZE, PARSER_SIZE),), outputs=((BATCH, CLASSES, PARSER_SIZE, PARSER_SIZE),),
                     licence=f"{key} (yakhyo's BiSeNet face parser): MIT.")


PARSERS = {spec.key: spec for spec in (_parser("bisenet_resnet_34", "models-3.0.0"),
                                       _parser("bisenet_resnet_18", "models-3.1.0"))}
"""In order of preference: the first one present is loaded."""


class FaceParser(BatchedModel[Frame, Labels]):
    """Labels aligned BGR crops of any size: one 512x512 class map per crop."""

    def inputs(self, crops: Sequence[Frame]) -> list[np.ndarray]:
        sized = [crop if crop.shape[0] == PARSER_SIZE else cv2.resize(crop, (PARSER_SIZE, PARSER_SIZE)) for crop in crops]
        return [self.blob(sized).astype(np.float32)]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[Labels]:
        return list(outputs[0].argmax(axis=1).astype(np.uint8))


def _build(opened: OpenedModel, options: RunOptions) -> FaceParser:
    return FaceParser(opened)


FAMILY = ModelFamily(ROLE, PARSERS, None, _build, when_present="first")
