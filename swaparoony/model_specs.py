"""What each model file is, as data: where it lives, its release checksum and its I/O contract."""

from __future__ import annotations

from dataclasses import dataclass

LICENCE = (
    "InsightFace's buffalo_l and inswapper_128 weights are released for non-commercial research "
    "use only; check the licence before any commercial use."
)
DYNAMIC = None
"""A dimension the model leaves free (batch, or the detector's height and width)."""


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor and its shape; None marks a free dimension."""

    name: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class Source:
    """Where a file can be downloaded: a URL, and the member to take when the URL is a zip archive."""

    url: str
    member: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One model file of the release the service was built for."""

    key: str
    relative_path: str
    size: int
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sources: tuple[Source, ...]
    trailing_initializer_shape: tuple[int, ...] | None = None


_BUFFALO_L_ZIPS = ("https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",)

DETECTOR = ModelSpec(
    key="detector",
    relative_path="buffalo_l/det_10g.onnx",
    size=16_923_827,
    sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
    inputs=(TensorSpec("input.1", (1, 3, DYNAMIC, DYNAMIC)),),
    # Scores, box distances and landmark distances for strides 8, 16 and 32, in that order.
    outputs=tuple(
        TensorSpec(name, (DYNAMIC, width))
        for name, width in zip(
            ("448", "471", "494", "451", "474", "497", "454", "477", "500"),
            (1, 1, 1, 4, 4, 4, 10, 10, 10),
        )
    ),
    sources=tuple(Source(url, "det_10g.onnx") for url in _BUFFALO_L_ZIPS),
)

RECOGNIZER = ModelSpec(
    key="recognizer",
    relative_path="buffalo_l/w600k_r50.onnx",
    size=174_383_860,
    sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
    inputs=(TensorSpec("input.1", (DYNAMIC, 3, 112, 112)),),
    outputs=(TensorSpec("683", (DYNAMIC, 512)),),
    sources=tuple(Source(url, "w600k_r50.onnx") for url in _BUFFALO_L_ZIPS),
)

SWAPPER = ModelSpec(
    key="swapper",
    relative_path="inswapper_128.onnx",
    size=554_253_681,
    sha256="e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
    inputs=(TensorSpec("target", (1, 3, 128, 128)), TensorSpec("source", (1, 512))),
    outputs=(TensorSpec("output", (1, 3, 128, 128)),),
    sources=(
        Source("https://huggingface.co/ezioruan/inswapper_128.onnx/resolve/main/inswapper_128.onnx"),
        Source("https://github.com/facefusion/facefusion-assets/releases/download/models/inswapper_128.onnx"),
    ),
    # inswapper keeps its 512x512 identity projection (emap) as the graph's last initializer.
    trailing_initializer_shape=(512, 512),
)

ALL_MODELS = (DETECTOR, RECOGNIZER, SWAPPER)
