"""JPEG results without encoding the whole picture: the destination is encoded once, a result re-encodes only
the rows of blocks its face touched and splices them in.

The destination is encoded with a restart marker after every row of MCUs (the 8 or 16-pixel bands JPEG
codes in), so each band's entropy-coded data stands alone: no DC prediction and no bit alignment cross a
marker. A result differs from its destination only inside the face's box, so its file is the
destination's bands above and below the box and a fresh encode of the bands the box covers, with the
markers renumbered. With the same encoder and settings that is byte for byte the file a full encode of
the result would be; tests check that it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .types import Frame

SOS, SOF0, EOI = 0xDA, 0xC0, b"\xff\xd9"
RESTART_MARKERS = range(0xD0, 0xD8)


@dataclass(frozen=True)
class SplicedJpeg:
    """A destination encoded in independent bands of MCU rows, ready to take re-encoded bands."""

    header: bytes
    """Everything up to and including the start-of-scan segment; it holds the full picture's size."""
    bands: tuple[bytes, ...]
    band_height: int
    quality: int

    @classmethod
    def encode(cls, frame: Frame, quality: int) -> SplicedJpeg:
        """Encode the frame once with a restart marker after every band."""
        data = encode_banded(frame, quality)
        header, bands = _split(data)
        return cls(header, bands, _band_height(header), quality)

    def rows(self, top: int, bottom: int) -> tuple[int, int]:
        """The pixel rows of the whole bands that cover rows [top, bottom): what a result must re-encode."""
        first, last = top // self.band_height, min(len(self.bands), -(-bottom // self.band_height))
        return first * self.band_height, last * self.band_height

    def splice(self, strip: Frame, top: int) -> bytes:
        """The JPEG of the destination with rows [top, top + strip height) replaced by strip (top from rows())."""
        first = top // self.band_height
        _, fresh = _split(encode_banded(np.ascontiguousarray(strip), self.quality))
        bands = self.bands[:first] + fresh + self.bands[first + len(fresh) :]
        body = b"".join(band + bytes((0xFF, 0xD0 + index % 8)) for index, band in enumerate(bands[:-1]))
        return self.header + body + bands[-1] + EOI


def encode_banded(frame: Frame, quality: int) -> bytes:
    """Baseline JPEG with the standard Huffman tables (no per-picture optimisation), a restart every MCU row."""
    mcus_per_row = -(-frame.shape[1] // 16)  # 4:2:0 chroma: 16x16 MCUs
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_RST_INTERVAL, mcus_per_row,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
              cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_PROGRESSIVE, 0]
    ok, buffer = cv2.imencode(".jpg", frame, params)
    if not ok:
        raise ValueError("OpenCV could not encode the JPEG")
    return buffer.tobytes()


def _split(data: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """The header through SOS, and the entropy-coded data of each band (restart markers and EOI removed)."""
    at = 2
    while True:
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        at += 2 + length
        if marker == SOS:
            break
    header, scan = data[:at], data[at : -len(EOI)]
    bands, start, at = [], 0, scan.find(b"\xff")
    while 0 <= at < len(scan) - 1:
        if scan[at + 1] in RESTART_MARKERS:
            bands.append(scan[start:at])
            start = at + 2
        at = scan.find(b"\xff", at + 2)  # a data 0xFF is stuffed as FF 00, so markers are the only other FFs
    bands.append(scan[start:])
    return header, tuple(bands)


def _band_height(header: bytes) -> int:
    """8 times the largest vertical sampling factor in the frame header: 16 for 4:2:0."""
    at = 2
    while True:
        marker, length = header[at + 1], int.from_bytes(header[at + 2 : at + 4], "big")
        if marker == SOF0:
            components = header[at + 9]
            factors = [header[at + 11 + 3 * i] & 0x0F for i in range(components)]
            return 8 * max(factors)
        at += 2 + length
