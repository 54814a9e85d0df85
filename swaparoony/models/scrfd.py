"""SCRFD, the face detector family (det_10g, det_500m, scrfd_10g_bnkps): its files, how its outputs are found by
structure, and its pre- and post-processing (letterbox a frame, decode anchors into faces)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import onnxruntime as ort

from ..imaging.face_geometry import non_max_suppression, sort_left_to_right
from ..types import Face, Frame
from .family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from .specs import BATCH, FREE, ModelSpec, Normalisation, Source

SCRFD_OUTPUTS = {"scores": 1, "boxes": 4, "landmarks": 10}
"""An SCRFD detector with 5-point landmarks has, per stride, outputs this wide: 9 outputs for strides 8/16/32."""
SCRFD_STRIDES = (8, 16, 32)
NMS_THRESHOLD = 0.4
DETECTION_COLUMNS = 15
"""x1, y1, x2, y2, score, then five (x, y) landmarks: one row per face."""

_INSIGHTFACE = "https://github.com/deepinsight/insightface/releases/download/v0.7"
ROLE = "detector"


def _scrfd(key: str, relative_path: str, pack: str, size: int | None = None, sha256: str | None = None) -> ModelSpec:
    """An SCRFD file: all were trained at 640x640 with the same normalisation and one image input."""
    return ModelSpec(key=key, role=ROLE, relative_path=relative_path, size=size, sha256=sha256,
                     sources=(Source(f"{_INSIGHTFACE}/{pack}.zip", f"{key}.onnx"),), input_size=640,
                     normalisation=Normalisation(127.5, 128.0), inputs=((BATCH, 3, FREE, FREE),))


DETECTORS: dict[str, ModelSpec] = {
    "det_10g": _scrfd("det_10g", "buffalo_l/det_10g.onnx", "buffalo_l", 16_923_827,
                      "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"),
    # buffalo_s: about 20x cheaper than det_10g, for CPU nodes
    "det_500m": _scrfd("det_500m", "buffalo_s/det_500m.onnx", "buffalo_s"),
    # antelopev2's detector: SCRFD-10GF with batch norm and landmarks
    "scrfd_10g_bnkps": _scrfd("scrfd_10g_bnkps", "antelopev2/scrfd_10g_bnkps.onnx", "antelopev2"),
}
DEFAULT_DETECTOR = "det_10g"
DETECTOR = DETECTORS[DEFAULT_DETECTOR]
DETECTOR_SIZE = DETECTOR.input_size
"""Every SCRFD the service knows was trained at 640x640; canvases are letterboxed to it."""


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
            bbox=(float(row[0]) / scale, float(row[1]) / scale, float(row[2]) / scale, float(row[3]) / scale),
            landmarks=(row[5:].reshape(5, 2) / scale).astype(np.float32),
            score=float(row[4]),
        )
        for row in detections
    ]
    return sort_left_to_right(faces)


def scrfd_outputs(session: ort.InferenceSession, spec: ModelSpec, problems: list[str]) -> tuple[str, ...]:
    """Scores, boxes and landmarks per stride, found by width and size from one run on a blank canvas."""
    outputs = session.get_outputs()
    probe = np.zeros((1, 3, spec.input_size, spec.input_size), np.float32)
    shapes = [result.shape for result in session.run(None, {session.get_inputs()[0].name: probe})]
    widths = [shape[-1] if len(shape) in (2, 3) else None for shape in shapes]
    if None in widths:
        problems.append(f"outputs have shapes {[list(s) for s in shapes]}; SCRFD's are [anchors, width] or [batch, anchors, width]")
        return ()
    if len(outputs) == 6 and SCRFD_OUTPUTS["landmarks"] not in widths:
        problems.append("it has no landmark outputs; swapping needs an SCRFD detector with 5-point landmarks (kps)")
        return ()
    ordered: list[str] = []
    counts: dict[str, list[int]] = {}
    for kind, width in SCRFD_OUTPUTS.items():
        found = sorted((i for i, w in enumerate(widths) if w == width), key=lambda i: -int(np.prod(shapes[i][:-1])))
        if len(found) != len(SCRFD_STRIDES):
            problems.append(f"{len(found)} outputs {width} wide ({kind}), expected {len(SCRFD_STRIDES)} (one per stride)")
            return ()
        ordered += [outputs[i].name for i in found]
        counts[kind] = [int(np.prod(shapes[i][:-1])) for i in found]
    cells = [(spec.input_size // stride) ** 2 for stride in SCRFD_STRIDES]
    anchors = {count // cell for count, cell in zip(counts["scores"], cells) if count % cell == 0}
    if len(anchors) != 1 or any(counts[kind] != counts["scores"] for kind in counts):
        problems.append(f"output sizes {counts} do not fit strides {SCRFD_STRIDES} at {spec.input_size}x{spec.input_size}")
        return ()
    return tuple(ordered)


class FaceDetector(BatchedModel[Frame, np.ndarray]):
    """Runs an SCRFD detector on letterboxed canvases: one array of detection rows per canvas, in canvas pixels."""

    def __init__(self, opened: OpenedModel, threshold: float) -> None:
        super().__init__(opened)
        self.threshold = threshold
        self._anchors: dict[tuple[int, int, int], list[np.ndarray]] = {}

    def inputs(self, canvases: Sequence[Frame]) -> list[np.ndarray]:
        return [self.blob(canvases)]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[np.ndarray]:
        # [N, anchors, width], or [N * anchors, width] where the export folds the batch: per item either way.
        per_item = [out.reshape(count, -1, out.shape[-1]) for out in outputs]
        return [self._decode([out[i] for out in per_item]) for i in range(count)]

    def _decode(self, outputs: list[np.ndarray]) -> np.ndarray:
        """Outputs in the layout's order: scores, then boxes, then landmarks, each for strides 8, 16, 32."""
        rows = []
        levels = len(SCRFD_STRIDES)
        size = self.spec.input_size
        anchors = len(outputs[0]) // ((size // SCRFD_STRIDES[0]) ** 2)  # anchors per feature-map cell
        for level, (stride, centers) in enumerate(zip(SCRFD_STRIDES, self._anchor_centers(size, size, anchors))):
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

    def _anchor_centers(self, height: int, width: int, anchors: int) -> list[np.ndarray]:
        """Anchor points per stride (top-left of each cell, as many a cell as the model has), cached per input size."""
        key = (height, width, anchors)
        if key not in self._anchors:
            levels = []
            for stride in SCRFD_STRIDES:
                rows, cols = height // stride, width // stride
                grid = np.stack(list(np.mgrid[:rows, :cols][::-1]), axis=-1).reshape(-1, 2).astype(np.float32) * stride
                levels.append(np.repeat(grid, anchors, axis=0))
            self._anchors[key] = levels
        return self._anchors[key]


def _detector(opened: OpenedModel, options: RunOptions) -> FaceDetector:
    return FaceDetector(opened, options.detection_threshold)


FAMILY = ModelFamily(ROLE, DETECTORS, DEFAULT_DETECTOR, _detector, find_outputs=scrfd_outputs)
