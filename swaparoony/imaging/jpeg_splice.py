"""JPEG results without encoding the whole picture: the destination is encoded once, a result re-encodes only
the tiles of blocks its faces touched and splices them in.

The destination is encoded with a restart marker every few MCUs (the 16x16 blocks JPEG codes in at 4:2:0), a
count that divides the MCUs of a row, so the picture is a grid of tiles, one MCU row high, whose entropy-coded
data stands alone: no DC prediction and no bit alignment cross a marker. A result differs from its
destination only inside the faces' boxes, so its file is the destination's tiles around them and a fresh
encode of the tiles the boxes cover, with the markers renumbered. With the same encoder and settings that is
byte for byte the file a full encode of the result would be; tests check that it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Frame

SOS, EOI = 0xDA, b"\xff\xd9"
RESTARTS = tuple(bytes((0xFF, marker)) for marker in range(0xD0, 0xD8))
"""The eight restart markers, RST0 to RST7, used in turn."""
RESTART = re.compile(rb"\xff[\xd0-\xd7]")
"""A restart marker in entropy-coded data, where a data byte 0xFF is always stuffed as FF 00."""
MCU = 16
"""Pixels per MCU side at 4:2:0 chroma."""
MAX_TILE_MCUS = 8
"""At most 128-pixel-wide tiles: a face box re-encodes two or three per MCU row, and each restart marker costs
about 2.5 bytes (a 1280x1280 picture gains about 2 KB)."""


@dataclass(frozen=True)
class Area:
    """A rectangle of whole tiles, in pixels: what a result re-encodes."""

    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True)
class SplicedJpeg:
    """A destination encoded in independent tiles, ready to take re-encoded ones."""

    header: bytes
    """Everything up to and including the start-of-scan segment; it holds the full picture's size."""
    tiles: tuple[bytes, ...]
    """Entropy-coded data per tile, row by row, each but the last followed by its restart marker (the marker's
    number depends only on the tile's place), so a result is one join of mostly these."""
    width: int
    height: int
    tile_mcus: int
    quality: int

    @classmethod
    def encode(cls, frame: Frame, quality: int) -> SplicedJpeg:
        """Encode the frame once with a restart marker after every tile."""
        data = encode_banded(frame, quality)
        header, tiles = _split(data)
        return cls(header, tuple(_marked(tile, at, len(tiles)) for at, tile in enumerate(tiles)), frame.shape[1],
                   frame.shape[0], tile_mcus(frame.shape[1]), quality)

    @property
    def tiles_per_row(self) -> int:
        return -(-self.width // MCU) // self.tile_mcus

    def area(self, x0: int, y0: int, x1: int, y1: int) -> Area:
        """The whole tiles that cover pixels [x0, x1) x [y0, y1), clipped to the picture."""
        step = self.tile_mcus * MCU
        return Area((x0 // step) * step, (y0 // MCU) * MCU, min(self.width, -(-x1 // step) * step),
                    min(self.height, -(-y1 // MCU) * MCU))

    def splice(self, patch: Frame, area: Area) -> bytes:
        """The JPEG of the destination with the pixels of `area` (from area()) replaced by patch."""
        _, fresh = _split(encode_banded(np.ascontiguousarray(patch), self.quality, self.tile_mcus))
        tiles = list(self.tiles)
        per_row, across = self.tiles_per_row, -(-(area.right - area.left) // (self.tile_mcus * MCU))
        first = (area.top // MCU) * per_row + area.left // (self.tile_mcus * MCU)
        for index, tile in enumerate(fresh):
            row, column = divmod(index, across)
            at = first + row * per_row + column
            tiles[at] = _marked(tile, at, len(tiles))
        return b"".join((self.header, *tiles, EOI))


def tile_mcus(width: int) -> int:
    """The widest tile, up to MAX_TILE_MCUS, that divides a row's MCUs (restart intervals count MCUs across rows)."""
    row = -(-width // MCU)
    return max(n for n in range(1, MAX_TILE_MCUS + 1) if row % n == 0)


def encode_banded(frame: Frame, quality: int, tile: int | None = None) -> bytes:
    """Baseline JPEG with the standard Huffman tables (no per-picture optimisation) and a restart marker every
    `tile` MCUs (default: tile_mcus of its width)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_RST_INTERVAL, tile or tile_mcus(frame.shape[1]),
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
              cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_PROGRESSIVE, 0]
    ok, buffer = cv2.imencode(".jpg", frame, params)
    if not ok:
        raise ValueError("OpenCV could not encode the JPEG")
    return buffer.tobytes()


def _marked(tile: bytes, at: int, count: int) -> bytes:
    """The tile at place `at` followed by the restart marker that place takes (none after the last of the `count`
    tiles of the picture)."""
    return tile + RESTARTS[at % 8] if at < count - 1 else tile


def _split(data: bytes) -> tuple[bytes, list[bytes]]:
    """The header through SOS, and the entropy-coded data of each tile (restart markers and EOI removed)."""
    at = 2
    while True:
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        at += 2 + length
        if marker == SOS:
            break
    return data[:at], RESTART.split(data[at : -len(EOI)])
