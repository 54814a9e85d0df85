"""SCRFD (det_10g) adapter: letterbox a frame, run the detector, decode anchors into faces."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from .face_helper import non_max_suppression, sort_left_to_right
from .onnx_loader import has_dynamic_batch
from .types import Face, Frame

DETECTOR_SIZE = 640
STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
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
    """Runs det_10g on letterboxed canvases and returns one detection array per canvas."""

    def __init__(self, session: ort.InferenceSession, threshold: float) -> None:
        self.session = session
        self.threshold = threshold
        self.input_name = session.get_inputs()[0].name
        self.output_names = [output.name for output in session.get_outputs()]
        self.batched = has_dynamic_batch(session)
        self._anchors: dict[tuple[int, int], list[np.ndarray]] = {}

    def detect(self, canvases: list[Frame]) -> list[np.ndarray]:
        """Detect faces on each canvas; rows are in canvas pixels (see DETECTION_COLUMNS)."""
        if not canvases:
            return []
        blob = cv2.dnn.blobFromImages(canvases, 1.0 / 128.0, None, (127.5, 127.5, 127.5), swapRB=True)
        if self.batched:
            outputs = self.session.run(self.output_names, {self.input_name: blob})
            return [self._decode([out[i] for out in outputs], blob.shape[2:]) for i in range(len(canvases))]
        return [
            self._decode(self.session.run(self.output_names, {self.input_name: blob[i : i + 1]}), blob.shape[2:])
            for i in range(len(canvases))
        ]

    def _decode(self, outputs: list[np.ndarray], input_hw: tuple[int, int]) -> np.ndarray:
        rows = []
        for level, (stride, centers) in enumerate(zip(STRIDES, self._anchor_centers(input_hw))):
            scores = outputs[level].reshape(-1)
            hits = np.where(scores >= self.threshold)[0]
            if hits.size == 0:
                continue
            points = centers[hits]
            distances = outputs[level + len(STRIDES)].reshape(-1, 4)[hits] * stride
            landmarks = outputs[level + 2 * len(STRIDES)].reshape(-1, 10)[hits] * stride
            boxes = np.hstack([points - distances[:, :2], points + distances[:, 2:]])
            landmarks = landmarks + np.tile(points, 5)
            rows.append(np.hstack([boxes, scores[hits, None], landmarks]))
        if not rows:
            return np.zeros((0, DETECTION_COLUMNS), dtype=np.float32)
        found = np.vstack(rows).astype(np.float32)
        return found[non_max_suppression(found[:, :4], found[:, 4], NMS_THRESHOLD)]

    def _anchor_centers(self, input_hw: tuple[int, int]) -> list[np.ndarray]:
        """Anchor points per stride (top-left of each cell, two anchors a cell), cached per input size."""
        key = (int(input_hw[0]), int(input_hw[1]))
        if key not in self._anchors:
            levels = []
            for stride in STRIDES:
                rows, cols = key[0] // stride, key[1] // stride
                grid = np.stack(np.mgrid[:rows, :cols][::-1], axis=-1).reshape(-1, 2).astype(np.float32) * stride
                levels.append(np.repeat(grid, ANCHORS_PER_CELL, axis=0))
            self._anchors[key] = levels
        return self._anchors[key]
