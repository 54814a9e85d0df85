"""Pure geometry on arrays: landmark alignment, the feathered blend mask and paste-back.

OpenCV returns arrays of its input's depth, but its stubs type every result as any integer or float array
(MatLike), so results are cast to the Frame, Mask or AffineMatrix they are.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from ..models.specs import MASK_MARGIN, MASK_SIGMA
from ..types import AffineMatrix, Face, Frame, Landmarks5, Mask

ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
"""Where ArcFace expects the five landmarks in a 112x112 crop."""


@functools.cache
def alignment_template(size: int) -> np.ndarray:
    """The landmark template for a square crop, as insightface's estimate_norm builds it (made once per size, so
    read-only)."""
    if size % 112 == 0:
        template = ARCFACE_TEMPLATE * (size / 112.0)
    else:  # 128-pixel crops (inswapper) keep the 112 template's scale and shift it 8 px right.
        ratio = size / 128.0
        template = ARCFACE_TEMPLATE * ratio + np.array([8.0 * ratio, 0.0])
    template.setflags(write=False)
    return template


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> AffineMatrix:
    """Least-squares similarity transform (Umeyama 1991) mapping src points onto dst points.

    In the plane, a rotation with scale is one complex factor, so Umeyama's SVD has a closed form: the factor is
    the centred points' complex correlation over the source's spread. The same matrix to rounding, reflections
    included, in a third of the time (69 against 200 us; it runs on the event loop once per upload face)."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_z, dst_z = src_c[:, 0] + 1j * src_c[:, 1], dst_c[:, 0] + 1j * dst_c[:, 1]
    factor = np.vdot(src_z, dst_z) / np.vdot(src_z, src_z).real
    linear = np.array([[factor.real, -factor.imag], [factor.imag, factor.real]])
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def align_matrix(landmarks: Landmarks5, size: int) -> AffineMatrix:
    """The frame-to-crop transform that puts a face's landmarks on the template."""
    return estimate_similarity(landmarks.astype(np.float64), alignment_template(size))


def crop_face(frame: Frame, matrix: AffineMatrix, size: int) -> Frame:
    """Warp the face into a square, aligned crop of the given size."""
    return cast(Frame, cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0))


def feather_mask(size: int, margin: int, sigma: float) -> Mask:
    """A crop-sized blend weight: 1 in the middle, falling smoothly to exactly 0 at the border.

    The margin keeps the swapper's least reliable pixels (the crop's edge, mostly hair and background)
    out of the blend; the blur hides the seam.
    """
    step = np.zeros((size, size), dtype=np.float32)
    step[margin:-margin, margin:-margin] = 1.0
    mask = cast(Mask, cv2.GaussianBlur(step, (0, 0), sigma))
    mask[:2, :] = mask[-2:, :] = mask[:, :2] = mask[:, -2:] = 0.0
    return mask


@functools.cache
def crop_mask(size: int) -> Mask:
    """The swapper crop's blend mask at this crop size (margin and blur scaled with it); read-only, shared."""
    scale = size / 128
    mask = feather_mask(size, margin=round(MASK_MARGIN * scale), sigma=MASK_SIGMA * scale)
    mask.setflags(write=False)
    return mask


def blend(swapped: Frame, destination: Frame, mask: Mask) -> Frame:
    """The swapped crop over the destination's crop as paste-back blends them, in crop space."""
    return cast(Frame, cv2.blendLinear(swapped, destination, mask, 1.0 - mask))


def arcface_view(crop: Frame) -> Frame:
    """The 112x112 ArcFace crop inside a swapper crop of any size: the 128 template is ArcFace's 112 one shifted
    8 px right, so it is rows 0-112 and columns 8-120 (scaled), with no second alignment or detection."""
    k = crop.shape[0] / 128
    view = crop[: round(112 * k), round(8 * k) : round(120 * k)]
    return view if view.shape[0] == 112 else cast(Frame, cv2.resize(view, (112, 112), interpolation=cv2.INTER_AREA))


@dataclass(frozen=True)
class PasteRegion:
    """Where an aligned crop lands in its frame: a box, the crop-to-box warp and the warped mask."""

    x0: int
    y0: int
    x1: int
    y1: int
    matrix: AffineMatrix
    mask: Mask
    keep: Mask
    """1 - mask: the destination's own weight, kept so each paste is one blend call."""

    def for_crop(self, matrix: AffineMatrix) -> PasteRegion:
        """The same box and mask for the same face aligned at another crop size (pixel boost): only the warp
        differs, so the masks (the largest part, up to megabytes for a big face) are shared, not made again."""
        local = cast(AffineMatrix, cv2.invertAffineTransform(matrix))
        local[:, 2] -= (self.x0, self.y0)
        return dataclasses.replace(self, matrix=local)


def paste_region(frame_shape: tuple[int, ...], matrix: AffineMatrix, mask: Mask) -> PasteRegion:
    """Precompute, once per destination face, the box paste-back blends within and the crop's mask warped into it."""
    size = mask.shape[0]
    inverse = cast(AffineMatrix, cv2.invertAffineTransform(matrix))
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
    mapped = corners @ inverse.T
    height, width = frame_shape[:2]
    x0, y0 = (max(0, int(np.floor(v))) for v in mapped.min(axis=0))
    x1 = min(width, int(np.ceil(mapped[:, 0].max())) + 1)
    y1 = min(height, int(np.ceil(mapped[:, 1].max())) + 1)
    local = inverse.copy()
    local[:, 2] -= (x0, y0)
    warped = cast(Mask, cv2.warpAffine(mask, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0.0))
    return PasteRegion(x0, y0, x1, y1, local, warped, 1.0 - warped)


def paste_back(frame: Frame, crop: Frame, region: PasteRegion) -> Frame:
    """Blend a swapped crop into a copy of the frame, touching only the face's box."""
    out = frame.copy()
    box = out[region.y0 : region.y1, region.x0 : region.x1]
    warped = cv2.warpAffine(
        crop, region.matrix, (box.shape[1], box.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    box[...] = cv2.blendLinear(warped, box, region.mask, region.keep)  # 4.6x numpy's float blend, same to 1 level
    return out


def sort_left_to_right(faces: list[Face]) -> list[Face]:
    """Order faces by their box's left edge, the order people count them in on a photo."""
    return sorted(faces, key=lambda face: (face.bbox[0], face.bbox[1]))


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS: indices of boxes kept, highest score first."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        order = rest[overlap <= threshold]
    return keep
