"""The mark that outlives a re-save: 32 bits hidden in the pixels by RivaGAN (models/rivagan.py) that say "AI face
swap by Swaparoony" and which operator's service made the picture, and nothing about the person in it.

The Content Credentials and the XMP live in the file's metadata, which any re-save drops; this mark lives in the
pixels. RivaGAN runs on a SIDE x SIDE copy of the picture and its change is scaled back up to the full size, so a
mark costs one small model run however large the picture is, and outlives JPEG at quality 50, WebP, halving the size
and a 10 % crop (benchmarks/RESULTS.md). Destinations are marked once when the gallery loads, so the JPEG tiles a
request re-encodes come from a marked frame and a request pays nothing for its mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from ..types import Frame

SIDE = 256
DESCRIPTION = ("An imperceptible RivaGAN watermark whose 32 bits say: AI face swap by Swaparoony, and the operator's "
               "identifier; `swaparoony inspect` reads it.")
SERVICE_MARK = tuple(int(bit) for byte in b"SWP" for bit in f"{byte:08b}")
"""The payload's first 24 bits, the same in every picture of every Swaparoony service: ASCII "SWP"."""
OPERATOR_BITS = 8
FOUND_AT = 22
"""Service-mark bits that must be read right to say the mark is there: a random read gets 22 of 24 with odds of
2 in 100,000; no unmarked real photo measured read more than 18 (benchmarks/RESULTS.md)."""
BAND_ROWS = 512
"""Rows of the full picture the scaled-up change is made for at a time, so a 40 MP portrait needs no 480 MB float
copy of itself."""


def payload(operator: int) -> tuple[int, ...]:
    """The 32 bits a service hides: the service mark, then the operator's identifier (0-255) in 8 bits."""
    if not 0 <= operator < 1 << OPERATOR_BITS:
        raise ValueError(f"the watermark's operator identifier is 0 to {(1 << OPERATOR_BITS) - 1}, not {operator}")
    return SERVICE_MARK + tuple(int(bit) for bit in f"{operator:0{OPERATOR_BITS}b}")


def small_copy(frame: Frame) -> Frame:
    """The SIDE x SIDE copy the encoder marks and the decoder reads (squashed: both sides see the same squash)."""
    return cast(Frame, cv2.resize(frame, (SIDE, SIDE), interpolation=cv2.INTER_AREA))


def add_change(frame: Frame, change: np.ndarray) -> Frame:
    """The frame with the encoder's change (float, SIDE x SIDE: its marked copy less the copy) scaled up to it and
    added, rounded and clipped; written into the frame itself where it is writable (else a copy), band by band."""
    frame = frame if frame.flags.writeable else frame.copy()
    height, width = frame.shape[:2]
    columns = (np.arange(width, dtype=np.float32) + 0.5) * (change.shape[1] / width) - 0.5
    for top in range(0, height, BAND_ROWS):
        rows = (np.arange(top, min(top + BAND_ROWS, height), dtype=np.float32) + 0.5) * (change.shape[0] / height) - 0.5
        map_x, map_y = np.meshgrid(columns, rows)
        band = cv2.remap(change, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        frame[top : top + len(rows)] = cv2.add(frame[top : top + len(rows)], band, dtype=cv2.CV_8U)
    return frame


@dataclass(frozen=True)
class Reading:
    """What the decoder read from a picture."""

    service_bits: int
    """How many of the service mark's bits were read right."""
    operator: int

    @property
    def found(self) -> bool:
        return self.service_bits >= FOUND_AT

    def line(self) -> str:
        """The reading as `swaparoony inspect` says it."""
        if self.found:
            return (f"watermark: Swaparoony watermark found (service mark {self.service_bits}/{len(SERVICE_MARK)} "
                    f"bits, operator {self.operator})")
        return f"watermark: none found ({self.service_bits}/{len(SERVICE_MARK)} service-mark bits, {FOUND_AT} needed)"


def reading(logits: np.ndarray) -> Reading:
    """The decoder's 32 logits read against the service mark."""
    bits = (np.asarray(logits).reshape(-1) > 0).astype(int)
    mark = len(SERVICE_MARK)
    return Reading(int((bits[:mark] == np.array(SERVICE_MARK)).sum()), int("".join(map(str, bits[mark:])), 2))
