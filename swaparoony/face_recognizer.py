"""ArcFace (w600k_r50) adapter: aligned 112x112 crops in, swapper-ready identity latents out."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from .onnx_loader import has_dynamic_batch
from .types import Frame, Latent

RECOGNIZER_SIZE = 112


class FaceRecognizer:
    """Embeds faces and projects them through inswapper's emap, the only use the service has for them."""

    def __init__(self, session: ort.InferenceSession, emap: np.ndarray) -> None:
        self.session = session
        self.emap = emap
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        self.batched = has_dynamic_batch(session)

    def embed(self, crops: list[Frame]) -> list[Latent]:
        """One latent per aligned crop; a dynamic batch axis runs the whole list as one call."""
        if not crops:
            return []
        blob = cv2.dnn.blobFromImages(crops, 1.0 / 127.5, None, (127.5, 127.5, 127.5), swapRB=True)
        if self.batched:
            embeddings = self.session.run([self.output_name], {self.input_name: blob})[0]
        else:
            embeddings = np.vstack(
                [self.session.run([self.output_name], {self.input_name: blob[i : i + 1]})[0] for i in range(len(crops))]
            )
        return [self._latent(embedding) for embedding in embeddings]

    def _latent(self, embedding: np.ndarray) -> Latent:
        # inswapper wants the L2-normalised embedding mapped through emap, then normalised again.
        normed = embedding / np.linalg.norm(embedding)
        latent = normed @ self.emap
        return (latent / np.linalg.norm(latent)).astype(np.float32)
