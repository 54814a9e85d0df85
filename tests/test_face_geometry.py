"""Alignment and paste-back geometry, checked against insightface and on a real photo (t1.jpg)."""

from __future__ import annotations

from pathlib import Path

import cv2
import insightface
import numpy as np
import pytest
from insightface.utils import face_align

from swaparoony.imaging.face_geometry import (
    ARCFACE_TEMPLATE, align_matrix, arcface_view, crop_face, crop_mask, estimate_similarity, feather_mask,
    non_max_suppression, paste_back, paste_region,
)

T1 = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, [[tx], [ty]]])


def landmarks_in_photo(scale: float = 1.6, degrees: float = 12, at: tuple[float, float] = (300, 180)) -> np.ndarray:
    """The ArcFace template placed in the photo with a known scale, rotation and position."""
    return (ARCFACE_TEMPLATE * scale) @ similarity(1, degrees, 0, 0)[:, :2].T + np.array(at)


def test_similarity_is_recovered_exactly() -> None:
    truth = similarity(1.7, -23, 40, -12)
    points = np.random.default_rng(3).uniform(0, 200, (5, 2))
    mapped = points @ truth[:, :2].T + truth[:, 2]
    assert np.allclose(estimate_similarity(points, mapped), truth, atol=1e-9)


@pytest.mark.parametrize("size", [112, 128])
def test_alignment_matches_insightface(size: int) -> None:
    landmarks = landmarks_in_photo().astype(np.float32)
    ours = align_matrix(landmarks, size)
    theirs = face_align.estimate_norm(landmarks, size)
    assert np.allclose(ours, theirs, atol=1e-6)


def test_aligned_crop_puts_landmarks_on_the_template() -> None:
    landmarks = landmarks_in_photo()
    matrix = align_matrix(landmarks, 112)
    projected = np.hstack([landmarks, np.ones((5, 1))]) @ matrix.T
    assert np.allclose(projected, ARCFACE_TEMPLATE, atol=1e-6)


def test_feather_mask_is_one_inside_and_zero_at_the_border() -> None:
    mask = feather_mask(128, margin=10, sigma=5.0)
    assert mask[64, 64] == pytest.approx(1.0, abs=1e-3)
    assert mask[0].max() == 0 and mask[:, -1].max() == 0
    assert 0 < mask[10, 64] < 1  # a smooth ramp, not a hard edge


def test_paste_back_on_a_real_photo_touches_only_the_face_box() -> None:
    photo = cv2.imread(str(T1))
    matrix = align_matrix(landmarks_in_photo(), 128)
    region = paste_region(photo.shape, matrix, feather_mask(128, 10, 5.0))
    crop = crop_face(photo, matrix, 128)

    unchanged = paste_back(photo, crop, region)
    box = (slice(region.y0, region.y1), slice(region.x0, region.x1))
    outside = np.ones(photo.shape[:2], bool)
    outside[box] = False
    assert (unchanged[outside] == photo[outside]).all()
    assert np.abs(unchanged[box].astype(int) - photo[box]).mean() < 2.5  # the round trip only resamples

    painted = paste_back(photo, np.full_like(crop, (0, 255, 0)), region)
    assert (painted[outside] == photo[outside]).all()
    centre = np.hstack([landmarks_in_photo()[2], 1.0]).astype(int)[:2]  # the nose
    assert tuple(painted[centre[1], centre[0]]) == (0, 255, 0)
    assert (photo == cv2.imread(str(T1))).all()  # the source frame was not modified


def test_paste_region_is_clipped_to_the_frame() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    matrix = align_matrix(landmarks_in_photo(scale=1.0, degrees=0, at=(-30, -30)), 128)
    region = paste_region(frame.shape, matrix, feather_mask(128, 10, 5.0))
    assert region.x0 == 0 and region.y0 == 0 and region.x1 <= 100 and region.y1 <= 100
    assert paste_back(frame, np.full((128, 128, 3), 255, np.uint8), region).shape == frame.shape


def test_non_max_suppression_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [200, 200, 260, 260]], dtype=np.float32)
    assert non_max_suppression(boxes, np.array([0.8, 0.9, 0.7]), 0.4) == [1, 2]


@pytest.mark.parametrize("size", [128, 256, 512])
def test_the_arcface_crop_is_read_inside_a_swapper_crop_of_any_size(size: int) -> None:
    photo = cv2.imread(str(T1))
    landmarks = landmarks_in_photo()
    direct = crop_face(photo, align_matrix(landmarks, 112), 112).astype(int)
    view = arcface_view(crop_face(photo, align_matrix(landmarks, size), size)).astype(int)
    assert view.shape == (112, 112, 3)
    if size == 128:
        assert np.array_equal(view, direct)  # the same warp, shifted 8 px: the same pixels
    else:
        assert np.abs(view - direct).mean() < 4  # resampled from a finer crop


def test_boosted_crop_masks_scale_the_margin_and_blur() -> None:
    for size in (256, 512):
        small = cv2.resize(crop_mask(size), (128, 128), interpolation=cv2.INTER_AREA)
        assert np.abs(small - crop_mask(128)).max() < 0.08  # the same shape at every size
    assert not crop_mask(256).flags.writeable  # shared by every request: nobody may change it


def test_a_boosted_crop_pastes_back_through_the_shared_box_and_mask() -> None:
    photo = cv2.imread(str(T1))
    base = paste_region(photo.shape, align_matrix(landmarks_in_photo(), 128), crop_mask(128))
    matrix = align_matrix(landmarks_in_photo(), 512)
    region = base.for_crop(matrix)
    assert region.mask is base.mask and (region.x0, region.y1) == (base.x0, base.y1)
    own = paste_region(photo.shape, matrix, crop_mask(512))
    assert (own.x0, own.y0, own.x1, own.y1) == (base.x0, base.y0, base.x1, base.y1)
    assert np.allclose(region.matrix, own.matrix)
    box = (slice(base.y0, base.y1), slice(base.x0, base.x1))
    back = paste_back(photo, crop_face(photo, matrix, 512), region)
    assert np.abs(back[box].astype(int) - photo[box]).mean() < 2.5  # the round trip only resamples
