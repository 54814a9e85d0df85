"""inswapper_128 adapter: aligned 128x128 destination crops plus a latent in, swapped crops out."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from .contract import ModelLayout
from .specs import SWAPPER, ModelSpec
from ..types import Frame, SwapItem

SWAPPER_SIZE = SWAPPER.input_size


class FaceSwapper:
    """Runs inswapper: a batch as one call where the batch axis is free (natively or re-batched), else item by item."""

    def __init__(self, session: ort.InferenceSession, layout: ModelLayout, spec: ModelSpec) -> None:
        self.session = session
        self.layout = layout
        self.spec = spec

    def swap(self, items: list[SwapItem]) -> list[Frame]:
        """Return one swapped BGR crop per item."""
        if not items:
            return []
        norm = self.spec.normalisation
        targets = cv2.dnn.blobFromImages([item.crop for item in items], 1.0 / norm.std, None, (norm.mean,) * 3, swapRB=True)
        latents = np.stack([item.latent for item in items]).astype(np.float32)
        if self.layout.batch_free:
            predictions = self._run(targets, latents)
        else:
            predictions = np.concatenate([self._run(targets[i : i + 1], latents[i : i + 1]) for i in range(len(items))])
        # NCHW RGB in [0, 1] back to HWC BGR uint8.
        crops = np.clip(predictions.transpose(0, 2, 3, 1) * 255.0, 0, 255).astype(np.uint8)[..., ::-1]
        return [np.ascontiguousarray(crop) for crop in crops]

    def _run(self, targets: np.ndarray, latents: np.ndarray) -> np.ndarray:
        target, source = self.layout.input_names
        return self.session.run(list(self.layout.output_names), {target: targets, source: latents})[0]
