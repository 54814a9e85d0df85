"""The vocabulary of model files as data: where a file lives and comes from, its release checksum, and the facts
an adapter needs (input size, normalisation, the contract its inputs and outputs keep). Each family's own files are
declared in its module (scrfd.py, arcface.py, inswapper.py) and collected by registry.py.

Contracts are structural, not by tensor name: exporters name tensors as they like ('448', 'score_8'),
and insightface itself finds outputs by position and shape. A batch axis may be 1 or free everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LICENCE = (
    "InsightFace's buffalo_l, buffalo_s and antelopev2 model packs and inswapper_128 are released for "
    "non-commercial research use only; check the licence before any commercial use."
)
BATCH = None
"""The batch axis: 1 or free in every file."""
FREE = -1
"""A dimension the pipeline does not fix (the detector's height and width)."""
MASK_MARGIN = 10
"""The swapper crop's blend mask: pixels faded to zero at its border, then blurred (sigma) to hide the seam."""
MASK_SIGMA = 5.0
Shape = tuple[int | None, ...]
FACEFUSION_ASSETS = "https://github.com/facefusion/facefusion-assets/releases/download"
APACHE = "Apache-2.0: commercial use allowed under its terms."


@dataclass(frozen=True)
class Source:
    """Where a file can be downloaded: a URL, and the member to take when the URL is a zip archive."""

    url: str
    member: str | None = None


@dataclass(frozen=True)
class Normalisation:
    """How pixels become model input: (pixel - mean) / std, in pixel units, one value for every channel or one per
    channel in RGB order (a face parser's ImageNet statistics)."""

    mean: float | tuple[float, float, float]
    std: float | tuple[float, float, float]


@dataclass(frozen=True)
class ModelSpec:
    """One model file: its release facts, and what the adapter feeding it must know."""

    key: str
    role: str
    """The family's role (registry.FAMILIES' key) this file serves."""
    relative_path: str
    size: int | None
    """The release file's size and SHA-256; None where no release checksum is known (then checks only warn)."""
    sha256: str | None
    sources: tuple[Source, ...]
    input_size: int
    normalisation: Normalisation
    inputs: tuple[Shape, ...]
    """Input shapes in the order the adapter feeds them (BATCH: 1 or free; FREE: any)."""
    outputs: tuple[Shape, ...] = ()
    """Output shapes in order; empty where the family finds its outputs by structure (SCRFD's)."""
    trailing_initializer_shape: tuple[int, ...] | None = None
    """The shape of a graph's last initializer the adapter needs (inswapper's emap), read once at load."""
    licence: str = LICENCE


def facefusion_sources(release: str, file: str) -> tuple[Source, ...]:
    """Where FaceFusion publishes a model file: its GitHub release assets, mirrored on Hugging Face."""
    return (Source(f"{FACEFUSION_ASSETS}/{release}/{file}"),
            Source(f"https://huggingface.co/facefusion/{release}/resolve/main/{file}"))


def licences(specs: Iterable[ModelSpec]) -> str:
    """The licences of these files, each said once."""
    return " ".join(dict.fromkeys(spec.licence for spec in specs))
