"""Pixel boost: a face aligned at 256 or 512 px is swapped as (size/128)^2 sub-pixel-shifted 128 px tiles.

inswapper only works at 128x128, so a face pasted from one 128 px crop is visibly softer than the portrait
around it. Taking every k-th pixel (k = size/128) from each of the k^2 phase offsets gives k^2 tiles that
each hold the whole face, slightly shifted; each is swapped with the same identity, and interleaving the
results back (depth-to-space) gives a crop with k times the detail. The tiles of one face are one batch.
"""

from __future__ import annotations

import numpy as np

from ..types import Frame
from .inswapper import SWAPPER_SIZE

BOOST_SIZES = (128, 256, 512)
"""The crop sizes a request may ask for: 1, 4 or 16 swaps per face."""


def factor(size: int) -> int:
    """Tiles per side for a crop of this size."""
    return size // SWAPPER_SIZE


def tiles(crop: Frame) -> np.ndarray:
    """The crop's k^2 tiles, tile i*k+j being crop[i::k, j::k] (space-to-depth)."""
    k, side = factor(crop.shape[0]), SWAPPER_SIZE
    return np.ascontiguousarray(crop.reshape(side, k, side, k, 3).transpose(1, 3, 0, 2, 4).reshape(k * k, side, side, 3))


def untiled(swapped: np.ndarray) -> Frame:
    """Each tile put back at the pixels it came from (depth-to-space): the inverse of tiles()."""
    k, side = int(round(len(swapped) ** 0.5)), swapped.shape[1]
    return np.ascontiguousarray(swapped.reshape(k, k, side, side, 3).transpose(2, 0, 3, 1, 4).reshape(k * side, k * side, 3))
