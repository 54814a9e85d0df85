"""ArcFace (w600k_r50) adapter: aligned 112x112 crops in, swapper-ready identity latents out."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from .contract import ModelLayout
from .specs import RECOGNIZER, ModelSpec
from ..types import Frame, Latent

RECOGNIZER_SIZE = RECOGNIZER.input_size


class FaceRecognizer:
    """Embeds faces and projects them through inswapper's emap, the only use the service has for them."""

    def __init__(self, session: ort.InferenceSession, layout: ModelLayout, spec: ModelSpec, emap: np.ndarray) -> None:
        self.session = session
        self.layout = layout
        self.spec = spec
        self.emap = emap

    def embed(self, crops: list[Frame]) -> list[Latent]:
        """One swapper latent per aligned crop."""
        return self.latents(self.identities(crops))

    def identities(self, crops: list[Frame]) -> np.ndarray:
        """L2-normalised ArcFace embeddings, one row per aligned crop; a free batch axis runs them as one call."""
        if not crops:
            return np.zeros((0, 512), np.float32)
        norm = self.spec.normalisation
        blob = cv2.dnn.blobFromImages(crops, 1.0 / norm.std, None, (norm.mean,) * 3, swapRB=True)
        (input_name,), outputs = self.layout.input_names, list(self.layout.output_names)
        if self.layout.batch_free:
            embeddings = self.session.run(outputs, {input_name: blob})[0]
        else:
            embeddings = np.vstack([self.session.run(outputs, {input_name: blob[i : i + 1]})[0] for i in range(len(crops))])
        return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)

    def latents(self, identities: np.ndarray) -> list[Latent]:
        """inswapper's identity input: the normalised embedding mapped through emap, normalised again."""
        latents = identities @ self.emap
        latents /= np.maximum(np.linalg.norm(latents, axis=1, keepdims=True), 1e-12)
        return list(latents.astype(np.float32))
