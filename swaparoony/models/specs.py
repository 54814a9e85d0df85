"""What each model file is, as data: where it lives and comes from, its release checksum, and the facts the
adapters need (input size, normalisation, alignment, the contract its inputs and outputs keep).

Contracts are structural, not by tensor name: exporters name tensors as they like ('448', 'score_8'),
and insightface itself finds outputs by position and shape. A batch axis may be 1 or free everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LICENCE = (
    "InsightFace's buffalo_l, buffalo_s and antelopev2 model packs and inswapper_128 are released for "
    "non-commercial research use only; check the licence before any commercial use."
)
BATCH = None
"""The batch axis: 1 or free in every file."""
FREE = -1
"""A dimension the pipeline does not fix (the detector's height and width)."""
Role = Literal["detector", "recognizer", "swapper"]


@dataclass(frozen=True)
class Source:
    """Where a file can be downloaded: a URL, and the member to take when the URL is a zip archive."""

    url: str
    member: str | None = None


@dataclass(frozen=True)
class Normalisation:
    """How pixels become model input: (pixel - mean) / std, channels in RGB order."""

    mean: float
    std: float


@dataclass(frozen=True)
class ModelSpec:
    """One model file: its release facts, and what the adapter feeding it must know."""

    key: str
    role: Role
    relative_path: str
    size: int | None
    """The release file's size and SHA-256; None where no release checksum is known (then checks only warn)."""
    sha256: str | None
    sources: tuple[Source, ...]
    input_size: int
    normalisation: Normalisation
    inputs: tuple[tuple[int | None, ...], ...]
    """Input shapes in the order the adapter feeds them (BATCH: 1 or free; FREE: any)."""
    outputs: tuple[tuple[int | None, ...], ...] = ()
    """Output shapes in order; empty for the detector, whose outputs are found by structure (see SCRFD_OUTPUTS)."""
    trailing_initializer_shape: tuple[int, ...] | None = None
    licence: str = LICENCE


SCRFD_OUTPUTS = {"scores": 1, "boxes": 4, "landmarks": 10}
"""An SCRFD detector with 5-point landmarks has, per stride, outputs this wide: 9 outputs for strides 8/16/32."""
SCRFD_STRIDES = (8, 16, 32)
MASK_MARGIN = 10
"""The swapper crop's blend mask: pixels faded to zero at its border, then blurred (sigma) to hide the seam."""
MASK_SIGMA = 5.0

_INSIGHTFACE = "https://github.com/deepinsight/insightface/releases/download/v0.7"
_SCRFD = dict(role="detector", input_size=640, normalisation=Normalisation(127.5, 128.0), inputs=((BATCH, 3, FREE, FREE),))

DETECTORS: dict[str, ModelSpec] = {
    "det_10g": ModelSpec(
        key="det_10g", relative_path="buffalo_l/det_10g.onnx", size=16_923_827,
        sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        sources=(Source(f"{_INSIGHTFACE}/buffalo_l.zip", "det_10g.onnx"),), **_SCRFD,  # type: ignore[arg-type]
    ),
    "det_500m": ModelSpec(  # buffalo_s: about 20x cheaper than det_10g, for CPU nodes
        key="det_500m", relative_path="buffalo_s/det_500m.onnx", size=None, sha256=None,
        sources=(Source(f"{_INSIGHTFACE}/buffalo_s.zip", "det_500m.onnx"),), **_SCRFD,  # type: ignore[arg-type]
    ),
    "scrfd_10g_bnkps": ModelSpec(  # antelopev2's detector: SCRFD-10GF with batch norm and landmarks
        key="scrfd_10g_bnkps", relative_path="antelopev2/scrfd_10g_bnkps.onnx", size=None, sha256=None,
        sources=(Source(f"{_INSIGHTFACE}/antelopev2.zip", "scrfd_10g_bnkps.onnx"),), **_SCRFD,  # type: ignore[arg-type]
    ),
}
DEFAULT_DETECTOR = "det_10g"

RECOGNIZER = ModelSpec(
    key="w600k_r50", role="recognizer", relative_path="buffalo_l/w600k_r50.onnx", size=174_383_860,
    sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
    sources=(Source(f"{_INSIGHTFACE}/buffalo_l.zip", "w600k_r50.onnx"),),
    input_size=112, normalisation=Normalisation(127.5, 127.5),
    inputs=((BATCH, 3, 112, 112),), outputs=((BATCH, 512),),
)
"""Always w600k_r50, whatever the detector: inswapper's emap was trained on its embeddings, so another
recognizer would swap in the wrong identity."""

SWAPPER = ModelSpec(
    key="inswapper_128", role="swapper", relative_path="inswapper_128.onnx", size=554_253_681,
    sha256="e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
    sources=(
        Source("https://huggingface.co/ezioruan/inswapper_128.onnx/resolve/main/inswapper_128.onnx"),
        Source("https://github.com/facefusion/facefusion-assets/releases/download/models/inswapper_128.onnx"),
    ),
    input_size=128, normalisation=Normalisation(0.0, 255.0),
    # The aligned destination crop and the identity latent (found by rank, whatever their order), one output.
    inputs=((BATCH, 3, 128, 128), (BATCH, 512)), outputs=((BATCH, 3, 128, 128),),
    # inswapper keeps its 512x512 identity projection (emap) as the graph's last initializer.
    trailing_initializer_shape=(512, 512),
)


def model_set(detector: str = DEFAULT_DETECTOR) -> tuple[ModelSpec, ModelSpec, ModelSpec]:
    """The files a service with this detector needs: detector, recognizer, swapper."""
    return DETECTORS[detector], RECOGNIZER, SWAPPER


DETECTOR = DETECTORS[DEFAULT_DETECTOR]
DEFAULT_MODELS = model_set()
ALL_FILES = (*DETECTORS.values(), RECOGNIZER, SWAPPER)
