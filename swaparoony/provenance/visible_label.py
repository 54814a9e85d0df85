"""A small visible disclosure in a picture's corner, for deployers who must tell people, not only machines."""

from __future__ import annotations

import cv2
import numpy as np

from ..types import Frame

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_HEIGHT_SHARE = 0.025
"""Text height as a share of the picture's shorter side: readable, and small beside a face."""
MIN_TEXT_PX = 10


def labelled(frame: Frame, text: str) -> Frame:
    """Draw text, white on a darkened box, in the bottom-right corner of this frame (in place) and return it."""
    (x0, y0, x1, y1), scale, thickness, pad, baseline = _layout(frame.shape, text)
    box = frame[y0:y1, x0:x1]
    box[...] = (box.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40% so white text reads on any picture
    cv2.putText(frame, text, (x0 + pad, y1 - pad - baseline), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return frame


def top_row(shape: tuple[int, ...], text: str) -> int:
    """The first row the label touches in a picture of this shape."""
    return _layout(shape, text)[0][1]


def _layout(shape: tuple[int, ...], text: str) -> tuple[tuple[int, int, int, int], float, int, int, int]:
    """The label's box, font scale, stroke, padding and baseline for a picture of this shape."""
    height, width = shape[:2]
    text_px = max(MIN_TEXT_PX, round(min(height, width) * TEXT_HEIGHT_SHARE))
    scale = cv2.getFontScaleFromHeight(FONT, text_px, 1)
    thickness = max(1, text_px // 12)
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(2, text_px // 3)
    x0, y0 = max(0, width - text_w - 3 * pad), max(0, height - text_h - baseline - 3 * pad)
    x1, y1 = min(width, x0 + text_w + 2 * pad), min(height, y0 + text_h + baseline + 2 * pad)
    return (x0, y0, x1, y1), scale, thickness, pad, baseline
