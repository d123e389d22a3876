"""Photos worked on at the size their face needs: shrinking, landmarks, masks both ways."""

from __future__ import annotations

import numpy as np
import pytest

from d3dface.perception.landmarks import NUM_LANDMARKS, FaceLandmarks
from d3dface.perception.working_size import MAX_FACE_SIDE, mask_to_size, working_photo


def _landmarks_in_box(x0: float, y0: float, x1: float, y1: float) -> FaceLandmarks:
    """478 landmarks spread over the box (x0, y0, x1, y1), seeded."""
    rng = np.random.default_rng(0)
    points = rng.uniform((x0, y0), (x1, y1), size=(NUM_LANDMARKS, 2))
    points[:2] = (x0, y0), (x1, y1)
    return FaceLandmarks(
        points=points, z=rng.normal(0, 50, NUM_LANDMARKS), bbox=np.array([x0, y0, x1, y1])
    )


def test_a_photo_whose_face_fits_is_worked_on_as_it_is() -> None:
    photo = np.zeros((900, 1200, 3), np.uint8)
    landmarks = _landmarks_in_box(300, 200, 300 + MAX_FACE_SIDE, 600)
    mask = np.zeros((900, 1200), bool)
    work = working_photo(photo, landmarks, mask)
    assert work.photo is photo and work.landmarks is landmarks and work.mask is mask
    assert work.original_size == (900, 1200)


def test_a_large_face_is_shrunk_and_its_landmarks_follow_the_pixels() -> None:
    height, width = 3000, 4000
    landmarks = _landmarks_in_box(1000.0, 500.0, 2600.0, 2700.0)
    photo = np.zeros((height, width, 3), np.uint8)
    # a bright 8x8 square centred on landmark 5, and a hidden rectangle in the mask
    cx, cy = landmarks.points[5]
    photo[round(cy) - 4 : round(cy) + 4, round(cx) - 4 : round(cx) + 4] = 255
    mask = np.zeros((height, width), bool)
    mask[1500:2600, 1200:2400] = True

    work = working_photo(photo, landmarks, mask)

    small_height, small_width = work.photo.shape[:2]
    assert work.original_size == (height, width)
    assert work.mask is not None and work.mask.shape == (small_height, small_width)
    x0, y0, x1, y1 = work.landmarks.bbox
    assert max(x1 - x0, y1 - y0) == pytest.approx(MAX_FACE_SIDE, abs=1.0)
    assert small_width / width == pytest.approx(MAX_FACE_SIDE / 2200, abs=1e-3)
    # the square's centre of brightness sits on the scaled landmark
    brightness = work.photo[..., 0].astype(np.float64)
    rows, cols = np.indices(brightness.shape)
    centre = np.array([(cols * brightness).sum(), (rows * brightness).sum()]) / brightness.sum()
    assert np.allclose(centre + 0.5, work.landmarks.points[5], atol=0.25)
    # depths keep x's units
    assert np.allclose(work.landmarks.z, landmarks.z * small_width / width, rtol=1e-5)
    # the hidden rectangle keeps its place and area
    fraction = small_width / width
    assert work.mask.mean() == pytest.approx(mask.mean(), rel=0.02)
    assert work.mask[round(2000 * fraction), round(1800 * fraction)]
    assert not work.mask[round(1000 * fraction), round(1800 * fraction)]
    # a working photo is worked on as it is (the pipeline segments on it): never shrunk twice
    again = working_photo(work.photo, work.landmarks, work.mask)
    assert again.photo is work.photo and again.landmarks is work.landmarks


def test_a_shrunk_face_always_fits_so_it_is_not_shrunk_again() -> None:
    rng = np.random.default_rng(3)
    for _ in range(60):
        height, width = (int(side) for side in rng.integers(1000, 6000, 2))
        face_width, face_height = rng.uniform(MAX_FACE_SIDE + 1, min(height, width) - 1, 2)
        x0, y0 = rng.uniform(0, width - face_width), rng.uniform(0, height - face_height)
        landmarks = _landmarks_in_box(x0, y0, x0 + face_width, y0 + face_height)
        work = working_photo(np.zeros((height, width, 3), np.uint8), landmarks)
        assert working_photo(work.photo, work.landmarks).photo is work.photo, (height, width)


def test_a_mask_brought_back_to_the_photo_size_matches_the_original() -> None:
    rows, cols = np.indices((1200, 1600))
    disc = (rows - 600) ** 2 + (cols - 700) ** 2 < 400**2
    small = mask_to_size(disc, (300, 400))
    back = mask_to_size(small, (1200, 1600))
    assert small.shape == (300, 400) and back.shape == (1200, 1600)
    assert (back & disc).sum() / (back | disc).sum() > 0.99
    same = mask_to_size(disc, disc.shape)
    assert same is not disc and np.array_equal(same, disc)


def test_max_face_side_must_be_positive() -> None:
    photo = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 1"):
        working_photo(photo, _landmarks_in_box(10, 10, 90, 90), max_face_side=0)
