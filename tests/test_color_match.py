"""Color match moves the swapped face's colours to the destination face's, inside the blend mask."""

from __future__ import annotations

import cv2
import numpy as np

from swaparoony.imaging.color_match import match_color
from swaparoony.imaging.face_geometry import crop_mask


def lab_inside(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(crop, cv2.COLOR_BGR2LAB)[mask > 0.5].astype(float).mean(axis=0)


def test_the_swapped_face_takes_the_destinations_mean_colour_and_keeps_its_features() -> None:
    rng = np.random.default_rng(3)
    destination = np.clip(rng.normal((90, 120, 170), 12, (128, 128, 3)), 0, 255).astype(np.uint8)  # warm skin
    features = rng.normal(0, 25, (128, 128, 1))
    swapped = np.clip(np.array((170, 140, 110)) + features, 0, 255).astype(np.uint8)  # a cold cast
    mask = crop_mask(128)
    matched = match_color(swapped, destination, mask)
    assert np.abs(lab_inside(matched, mask) - lab_inside(destination, mask)).max() < 2.0
    assert np.corrcoef(matched[..., 1].ravel(), swapped[..., 1].ravel())[0, 1] > 0.95  # the same features


def test_an_empty_mask_changes_nothing() -> None:
    swapped = np.full((128, 128, 3), 100, np.uint8)
    assert match_color(swapped, swapped + 50, np.zeros((128, 128), np.float32)) is swapped
