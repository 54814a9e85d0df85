"""Color match (opt-in): the swapped face takes the destination face's colour statistics before it is pasted.

inswapper renders skin in its own tones, which can stand out under the portrait's lighting. Matching the
mean and standard deviation of each LAB channel inside the blend mask (Reinhard's transfer) keeps the
swapped features and borrows the destination's light and white balance.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..types import Frame, Mask

INSIDE = 0.5
"""Mask weight above which a pixel counts as the face (the feathered rim is mostly the destination's)."""


def match_color(swapped: Frame, destination: Frame, mask: Mask) -> Frame:
    """The swapped crop with its LAB mean and spread inside the mask moved to the destination crop's."""
    inside = (mask > INSIDE).astype(np.uint8)
    if not inside.any():
        return swapped
    source = cv2.cvtColor(swapped, cv2.COLOR_BGR2LAB)
    source_mean, source_std = cv2.meanStdDev(source, mask=inside)
    target_mean, target_std = cv2.meanStdDev(cv2.cvtColor(destination, cv2.COLOR_BGR2LAB), mask=inside)
    gain = target_std / np.maximum(source_std, 1.0)
    # An affine map per channel of 8-bit LAB is a 256-entry table per channel: one lookup per pixel.
    table = np.clip(np.arange(256)[:, None] * gain.T + (target_mean - source_mean * gain).T + 0.5, 0, 255)
    matched = cv2.cvtColor(cv2.LUT(source, table.astype(np.uint8)[:, None, :]), cv2.COLOR_LAB2BGR)
    return np.asarray(matched, dtype=np.uint8)  # already uint8: OpenCV's stubs only say "an array"
