"""inswapper_128, the face swapper family: its file, identity embeddings projected through its emap into latents,
and aligned 128x128 destination crops plus a latent in, swapped crops out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ModelFileInvalid
from ..types import Embedding, Frame, Latent, SwapItem
from .family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from .specs import BATCH, ModelSpec, Normalisation, Source

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
SWAPPER_SIZE = SWAPPER.input_size


class FaceSwapper(BatchedModel[SwapItem, Frame]):
    """Runs inswapper: one swapped BGR crop per item."""

    def __init__(self, opened: OpenedModel, emap: np.ndarray) -> None:
        super().__init__(opened)
        self.emap = emap

    def latents(self, identities: Sequence[Embedding]) -> list[Latent]:
        """inswapper's identity input: each normalised embedding mapped through emap, normalised again."""
        if not identities:
            return []
        latents = np.stack(identities) @ self.emap
        latents /= np.maximum(np.linalg.norm(latents, axis=1, keepdims=True), 1e-12)
        return list(latents.astype(np.float32))

    def inputs(self, items: Sequence[SwapItem]) -> list[np.ndarray]:
        return [self.blob([item.crop for item in items]), np.stack([item.latent for item in items]).astype(np.float32)]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[Frame]:
        # NCHW RGB in [0, 1] back to HWC BGR uint8.
        crops = np.clip(outputs[0].transpose(0, 2, 3, 1) * 255.0, 0, 255).astype(np.uint8)[..., ::-1]
        return [np.ascontiguousarray(crop) for crop in crops]


def _swapper(opened: OpenedModel, options: RunOptions) -> FaceSwapper:
    if opened.initializer is None:
        raise ModelFileInvalid(f"{opened.spec.relative_path}: no emap was read for the swapper")
    return FaceSwapper(opened, opened.initializer)


FAMILY = ModelFamily("swapper", {SWAPPER.key: SWAPPER}, SWAPPER.key, _swapper)
