"""A result's JPEG spliced from the destination's bands is byte for byte the JPEG of the whole result."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from swaparoony.imaging.jpeg_splice import SplicedJpeg, encode_banded, tile_mcus


@pytest.mark.parametrize(("height", "width"), [(1280, 1280), (1003, 777), (64, 48), (700, 1000)])
def test_a_spliced_result_is_the_full_encode_of_the_result(height: int, width: int) -> None:
    rng = np.random.default_rng(height)
    destination = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (5, 5), 0)
    prepared = SplicedJpeg.encode(destination, 90)
    boxes = [(0, 0, 10, 10), (width - 7, height - 5, width, height), (width // 3, height // 3, width // 2, height // 2),
             (0, 0, width, height), (17, 17, 18, 18), (width // 2, 5, width, 40)]
    for x0, y0, x1, y1 in boxes:
        result = destination.copy()
        result[y0:y1, x0:x1] = 255 - result[y0:y1, x0:x1]  # a "face" in this box
        area = prepared.area(x0, y0, x1, y1)
        assert area.left <= x0 and area.top <= y0 and x1 <= area.right and y1 <= area.bottom
        assert area.top % 16 == 0 and area.left % (16 * tile_mcus(width)) == 0
        spliced = prepared.splice(result[area.top : area.bottom, area.left : area.right], area)
        assert spliced == encode_banded(result, 90), (x0, y0, x1, y1)
        decoded = cv2.imdecode(np.frombuffer(spliced, np.uint8), cv2.IMREAD_COLOR)
        plain = cv2.imdecode(np.frombuffer(cv2.imencode(".jpg", result, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], np.uint8),
                             cv2.IMREAD_COLOR)
        assert np.array_equal(decoded, plain)  # restart markers change the file, not the pixels


def test_a_face_re_encodes_a_few_tiles_not_whole_rows() -> None:
    prepared = SplicedJpeg.encode(np.zeros((1280, 1280, 3), np.uint8), 90)
    area = prepared.area(600, 600, 760, 760)  # a 160-pixel face box
    assert (area.right - area.left) * (area.bottom - area.top) <= 256 * 176  # a fifth of the rows' pixels
    assert len(prepared.tiles) == 80 * 10  # 128-pixel tiles on 80 MCUs a row
