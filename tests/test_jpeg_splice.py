"""A result's JPEG spliced from the destination's bands is byte for byte the JPEG of the whole result."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from swaparoony.jpeg_splice import SplicedJpeg, encode_banded


@pytest.mark.parametrize(("height", "width"), [(1280, 1280), (1003, 777), (64, 48)])
def test_a_spliced_result_is_the_full_encode_of_the_result(height: int, width: int) -> None:
    rng = np.random.default_rng(height)
    destination = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (5, 5), 0)
    prepared = SplicedJpeg.encode(destination, 90)
    for top, bottom in [(0, 10), (height - 5, height), (height // 3, height // 2), (0, height), (17, 18)]:
        result = destination.copy()
        result[top:bottom, : width // 2] = 255 - result[top:bottom, : width // 2]  # a "face" somewhere in these rows
        first, last = prepared.rows(top, bottom)
        assert first <= top and bottom <= last and first % 16 == 0
        spliced = prepared.splice(result[first:last], first)
        assert spliced == encode_banded(result, 90)
        decoded = cv2.imdecode(np.frombuffer(spliced, np.uint8), cv2.IMREAD_COLOR)
        plain = cv2.imdecode(np.frombuffer(cv2.imencode(".jpg", result, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], np.uint8),
                             cv2.IMREAD_COLOR)
        assert np.array_equal(decoded, plain)  # restart markers change the file, not the pixels
