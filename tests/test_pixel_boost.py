"""Space-to-depth tiles for pixel boost: each tile is a whole face, and every pixel goes back where it came from."""

from __future__ import annotations

import numpy as np
import pytest

from swaparoony.models.pixel_boost import tiles, untiled


@pytest.mark.parametrize("size", [128, 256, 512])
def test_tiles_are_sub_pixel_shifted_faces_and_go_back_exactly(size: int) -> None:
    crop = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    k = size // 128
    split = tiles(crop)
    assert split.shape == (k * k, 128, 128, 3)
    for i in range(k):
        for j in range(k):
            assert np.array_equal(split[i * k + j], crop[i::k, j::k])  # every k-th pixel from phase (i, j)
    assert np.array_equal(untiled(split), crop)


def test_a_change_to_one_tile_lands_on_its_own_pixels_only() -> None:
    crop = np.zeros((256, 256, 3), np.uint8)
    split = tiles(crop)
    split[3] = 255  # phase (1, 1)
    back = untiled(split)
    assert back[1::2, 1::2].min() == 255 and back[0::2, :].max() == 0 and back[:, 0::2].max() == 0
