"""ArcFace, the face recognizer family (w600k_r50): its file, and aligned 112x112 crops in, L2-normalised identity
embeddings out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Embedding, Frame
from .family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from .specs import BATCH, ModelSpec, Normalisation, Source

RECOGNIZER = ModelSpec(
    key="w600k_r50", role="recognizer", relative_path="buffalo_l/w600k_r50.onnx", size=174_383_860,
    sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
    sources=(Source("https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip", "w600k_r50.onnx"),),
    input_size=112, normalisation=Normalisation(127.5, 127.5),
    inputs=((BATCH, 3, 112, 112),), outputs=((BATCH, 512),),
)
"""Always w600k_r50, whatever the detector: inswapper's emap was trained on its embeddings, so another
recognizer would swap in the wrong identity."""
RECOGNIZER_SIZE = RECOGNIZER.input_size


class FaceRecognizer(BatchedModel[Frame, Embedding]):
    """Embeds aligned crops: the identity inswapper takes (through its emap) and the similarity score compares."""

    def inputs(self, crops: Sequence[Frame]) -> list[np.ndarray]:
        return [self.blob(crops)]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[Embedding]:
        embeddings = outputs[0]
        return list(embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12))


def _recognizer(opened: OpenedModel, options: RunOptions) -> FaceRecognizer:
    return FaceRecognizer(opened)


FAMILY = ModelFamily("recognizer", {RECOGNIZER.key: RECOGNIZER}, RECOGNIZER.key, _recognizer)
