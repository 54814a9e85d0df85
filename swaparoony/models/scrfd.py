"""SCRFD adapter (det_10g, det_500m, scrfd_10g_bnkps): letterbox a frame, run the detector, decode anchors into faces."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from ..imaging.face_geometry import non_max_suppression, sort_left_to_right
from .contract import ModelLayout
from .specs import DETECTORS, SCRFD_STRIDES, ModelSpec
from ..types import Face, Frame

DETECTOR_SIZE = DETECTORS["det_10g"].input_size
"""Every SCRFD the service knows was trained at 640x640; canvases are letterboxed to it."""
NMS_THRESHOLD = 0.4
DETECTION_COLUMNS = 15
"""x1, y1, x2, y2, score, then five (x, y) landmarks: one row per face."""


def letterbox(frame: Frame, size: int = DETECTOR_SIZE) -> tuple[Frame, float]:
    """Fit the frame into a size x size canvas at the top left, keeping its aspect (as SCRFD was trained)."""
    height, width = frame.shape[:2]
    scale = min(size / height, size / width)
    resized = cv2.resize(frame, (max(1, round(width * scale)), max(1, round(height * scale))))
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas, scale


def faces_from_detections(detections: np.ndarray, scale: float) -> list[Face]:
    """Map detector rows back to frame coordinates, ordered left to right."""
    faces = [
        Face(
            bbox=tuple(float(v) / scale for v in row[:4]),
            landmarks=(row[5:].reshape(5, 2) / scale).astype(np.float32),
            score=float(row[4]),
        )
        for row in detections
    ]
    return sort_left_to_right(faces)


class FaceDetector:
    """Runs an SCRFD detector on letterboxed canvases and returns one detection array per canvas."""

    def __init__(self, session: ort.InferenceSession, layout: ModelLayout, spec: ModelSpec, threshold: float) -> None:
        self.session = session
        self.layout = layout
        self.spec = spec
        self.threshold = threshold
        self._anchors: dict[tuple[int, int], list[np.ndarray]] = {}

    def detect(self, canvases: list[Frame]) -> list[np.ndarray]:
        """Detect faces on each canvas; rows are in canvas pixels (see DETECTION_COLUMNS)."""
        if not canvases:
            return []
        norm = self.spec.normalisation
        blob = cv2.dnn.blobFromImages(canvases, 1.0 / norm.std, None, (norm.mean,) * 3, swapRB=True)
        (input_name,), names = self.layout.input_names, list(self.layout.output_names)
        if self.layout.batch_free:
            # [N, anchors, width], or [N * anchors, width] where the export folds the batch: per item either way.
            per_item = [out.reshape(len(canvases), -1, out.shape[-1]) for out in self.session.run(names, {input_name: blob})]
            return [self._decode([out[i] for out in per_item], blob.shape[2:]) for i in range(len(canvases))]
        return [
            self._decode(self.session.run(names, {input_name: blob[i : i + 1]}), blob.shape[2:])
            for i in range(len(canvases))
        ]

    def _decode(self, outputs: list[np.ndarray], input_hw: tuple[int, int]) -> np.ndarray:
        """Outputs in the layout's order: scores, then boxes, then landmarks, each for strides 8, 16, 32."""
        rows = []
        levels = len(SCRFD_STRIDES)
        for level, (stride, centers) in enumerate(zip(SCRFD_STRIDES, self._anchor_centers(input_hw))):
            scores = outputs[level].reshape(-1)
            hits = np.where(scores >= self.threshold)[0]
            if hits.size == 0:
                continue
            points = centers[hits]
            distances = outputs[level + levels].reshape(-1, 4)[hits] * stride
            landmarks = outputs[level + 2 * levels].reshape(-1, 10)[hits] * stride
            boxes = np.hstack([points - distances[:, :2], points + distances[:, 2:]])
            landmarks = landmarks + np.tile(points, 5)
            rows.append(np.hstack([boxes, scores[hits, None], landmarks]))
        if not rows:
            return np.zeros((0, DETECTION_COLUMNS), dtype=np.float32)
        found = np.vstack(rows).astype(np.float32)
        return found[non_max_suppression(found[:, :4], found[:, 4], NMS_THRESHOLD)]

    def _anchor_centers(self, input_hw: tuple[int, int]) -> list[np.ndarray]:
        """Anchor points per stride (top-left of each cell, as many a cell as the model has), cached per input size."""
        key = (int(input_hw[0]), int(input_hw[1]))
        if key not in self._anchors:
            levels = []
            for stride in SCRFD_STRIDES:
                rows, cols = key[0] // stride, key[1] // stride
                grid = np.stack(np.mgrid[:rows, :cols][::-1], axis=-1).reshape(-1, 2).astype(np.float32) * stride
                levels.append(np.repeat(grid, self.layout.anchors_per_cell, axis=0))
            self._anchors[key] = levels
        return self._anchors[key]
