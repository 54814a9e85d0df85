"""Face enhancers, the family that restores a swapped face (inswapper's 128-pixel face looks soft): GFPGAN 1.4,
RestoreFormer++, CodeFormer and GPEN-BFR 512, as FaceFusion publishes and runs them.

Their contract: the face warped by its five landmarks to the FFHQ 512 template at 512 px, RGB scaled to
(x/255 - 0.5) / 0.5, NCHW [1,3,512,512] in and out, the output clipped to [-1, 1]. CodeFormer has a second input, its
fidelity `weight` (a double, shape [1]: one value for the whole call). Each file is a per-request choice, so every
file present in the models directory is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..types import Frame
from .family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from .specs import APACHE, BATCH, ModelSpec, Normalisation, facefusion_sources

ROLE = "enhancer"
ENHANCER_SIZE = 512
FFHQ_512 = np.array([[0.37691676, 0.46864664], [0.62285697, 0.46912813], [0.50123859, 0.61331904],
                     [0.39308822, 0.72541100], [0.61150205, 0.72490465]]) * ENHANCER_SIZE
"""Where the enhancers expect the five landmarks in their 512x512 input (FFHQ's alignment)."""
DEFAULT_WEIGHT = 0.5
NON_COMMERCIAL = "non-commercial use only (check the licence before any commercial use)"


def _enhancer(key: str, licence: str, weighted: bool = False) -> ModelSpec:
    face = (BATCH, 3, ENHANCER_SIZE, ENHANCER_SIZE)
    return ModelSpec(key=key, role=ROLE, relative_path=f"{key}.onnx", size=None, sha256=None,
                     sources=facefusion_sources("models-3.0.0", f"{key}.onnx"), input_size=ENHANCER_SIZE,
                     normalisation=Normalisation(127.5, 127.5), inputs=(face, (1,)) if weighted else (face,),
                     outputs=(face,), licence=licence)


ENHANCERS = {spec.key: spec for spec in (
    _enhancer("gfpgan_1.4", f"GFPGAN 1.4 (TencentARC): {APACHE}"),
    _enhancer("restoreformer_plus_plus", f"RestoreFormer++ (wzhouxiff): {APACHE}"),
    _enhancer("codeformer", f"CodeFormer (sczhou): S-Lab License 1.0, {NON_COMMERCIAL}.", weighted=True),
    _enhancer("gpen_bfr_512", f"GPEN-BFR 512 (yangxy): {NON_COMMERCIAL}."),
)}


@dataclass(frozen=True)
class EnhanceItem:
    """One face to restore: aligned to FFHQ_512 at 512 px (BGR), and CodeFormer's fidelity (others ignore it)."""

    face: Frame
    weight: float = DEFAULT_WEIGHT


class FaceEnhancer(BatchedModel[EnhanceItem, Frame]):
    """Runs one enhancer file: a restored 512x512 BGR face per item."""

    @property
    def weighted(self) -> bool:
        return len(self.spec.inputs) == 2

    def inputs(self, items: Sequence[EnhanceItem]) -> list[np.ndarray]:
        faces = self.blob([item.face for item in items])
        return [faces, np.array([item.weight for item in items], np.float64)] if self.weighted else [faces]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """CodeFormer takes one weight per call: its items run grouped by weight (one call per group where the batch
        axis is free)."""
        if not self.weighted:
            return super().run(inputs)
        faces, weights = inputs
        restored = np.empty_like(faces)
        names = list(self.layout.output_names)
        face_name, weight_name = self.layout.input_names
        for weight in np.unique(weights):
            rows = np.flatnonzero(weights == weight)
            groups = [rows] if self.layout.batch_free else [rows[i : i + 1] for i in range(len(rows))]
            for group in groups:
                (restored[group],) = self.session.run(names, {face_name: faces[group], weight_name: np.array([weight])})
        return [restored]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[Frame]:
        faces = ((np.clip(outputs[0], -1.0, 1.0) + 1.0) * 127.5).round().astype(np.uint8)
        return [np.ascontiguousarray(face.transpose(1, 2, 0)[..., ::-1]) for face in faces]


def _build(opened: OpenedModel, options: RunOptions) -> FaceEnhancer:
    return FaceEnhancer(opened)


FAMILY = ModelFamily(ROLE, ENHANCERS, None, _build, when_present="every")
