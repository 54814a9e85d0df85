"""ArcFace (w600k_r50) adapter: aligned 112x112 crops in, swapper-ready identity latents out."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from .model_contract import ModelLayout
from .model_specs import RECOGNIZER, ModelSpec
from .types import Frame, Latent

RECOGNIZER_SIZE = RECOGNIZER.input_size


class FaceRecognizer:
    """Embeds faces and projects them through inswapper's emap, the only use the service has for them."""

    def __init__(self, session: ort.InferenceSession, layout: ModelLayout, spec: ModelSpec, emap: np.ndarray) -> None:
        self.session = session
        self.layout = layout
        self.spec = spec
        self.emap = emap

    def embed(self, crops: list[Frame]) -> list[Latent]:
        """One latent per aligned crop; a dynamic batch axis runs the whole list as one call."""
        if not crops:
            return []
        norm = self.spec.normalisation
        blob = cv2.dnn.blobFromImages(crops, 1.0 / norm.std, None, (norm.mean,) * 3, swapRB=True)
        (input_name,), outputs = self.layout.input_names, list(self.layout.output_names)
        if self.layout.batch_free:
            embeddings = self.session.run(outputs, {input_name: blob})[0]
        else:
            embeddings = np.vstack([self.session.run(outputs, {input_name: blob[i : i + 1]})[0] for i in range(len(crops))])
        return [self._latent(embedding) for embedding in embeddings]

    def _latent(self, embedding: np.ndarray) -> Latent:
        # inswapper wants the L2-normalised embedding mapped through emap, then normalised again.
        normed = embedding / np.linalg.norm(embedding)
        latent = normed @ self.emap
        return (latent / np.linalg.norm(latent)).astype(np.float32)
