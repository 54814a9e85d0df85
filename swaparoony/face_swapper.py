"""inswapper_128 adapter: aligned 128x128 destination crops plus a latent in, swapped crops out."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from .onnx_loader import has_dynamic_batch
from .types import Frame, SwapItem

SWAPPER_SIZE = 128


class FaceSwapper:
    """Runs inswapper; the real file's batch axis is fixed at 1, so a batch runs item by item."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.target_name, self.source_name = (tensor.name for tensor in session.get_inputs())
        self.output_name = session.get_outputs()[0].name
        self.batched = has_dynamic_batch(session)

    def swap(self, items: list[SwapItem]) -> list[Frame]:
        """Return one swapped BGR crop per item."""
        if not items:
            return []
        targets = cv2.dnn.blobFromImages([item.crop for item in items], 1.0 / 255.0, None, (0, 0, 0), swapRB=True)
        latents = np.stack([item.latent for item in items]).astype(np.float32)
        if self.batched:
            predictions = self._run(targets, latents)
        else:
            predictions = np.concatenate([self._run(targets[i : i + 1], latents[i : i + 1]) for i in range(len(items))])
        # NCHW RGB in [0, 1] back to HWC BGR uint8.
        crops = np.clip(predictions.transpose(0, 2, 3, 1) * 255.0, 0, 255).astype(np.uint8)[..., ::-1]
        return [np.ascontiguousarray(crop) for crop in crops]

    def _run(self, targets: np.ndarray, latents: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.target_name: targets, self.source_name: latents})[0]
