"""Tests for d3dface.perception.landmarks on the shared public-domain test photos."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from shared_photos import shared_photo

from d3dface.imageio import load_image
from d3dface.perception.landmarks import (
    NUM_LANDMARKS,
    FaceLandmarks,
    LandmarkDetector,
    NoFaceError,
    choose_face,
    default_detector,
    detect_face,
    size_rank,
)

PHOTOS = ["obama.jpg", "biden.jpg", "astronaut.png"]

RIGHT_EYE_OUTER, LEFT_EYE_OUTER, NOSE_TIP, UPPER_LIP = 33, 263, 1, 13


def _photo(name: str) -> np.ndarray:
    return load_image(shared_photo(name))


@pytest.fixture(scope="module")
def detector() -> Iterator[LandmarkDetector]:
    with LandmarkDetector() as shared:
        yield shared


def _assert_plausible_face(face: FaceLandmarks, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    assert face.points.shape == (NUM_LANDMARKS, 2) and face.points.dtype == np.float32
    assert face.z.shape == (NUM_LANDMARKS,) and face.z.dtype == np.float32
    assert face.bbox.shape == (4,) and face.bbox.dtype == np.float32
    assert np.all(face.points >= 0) and np.all(face.points[:, 0] <= width)
    assert np.all(face.points[:, 1] <= height)
    np.testing.assert_allclose(face.bbox[:2], face.points.min(axis=0))
    np.testing.assert_allclose(face.bbox[2:], face.points.max(axis=0))
    right_eye, left_eye = face.points[RIGHT_EYE_OUTER], face.points[LEFT_EYE_OUTER]
    nose, lip = face.points[NOSE_TIP], face.points[UPPER_LIP]
    assert right_eye[0] < nose[0] < left_eye[0]
    assert nose[1] > max(right_eye[1], left_eye[1])
    assert lip[1] > nose[1]
    assert face.z[NOSE_TIP] < face.z[RIGHT_EYE_OUTER]  # the nose tip is nearer the camera
    assert face.size > 100
    assert 0.0 <= face.score <= 1.0


@pytest.mark.parametrize("name", PHOTOS)
def test_one_plausible_face_per_photo(detector: LandmarkDetector, name: str) -> None:
    image = _photo(name)
    faces = detector.detect(image)
    assert len(faces) == 1
    _assert_plausible_face(faces[0], image)


def test_greyscale_photo(detector: LandmarkDetector) -> None:
    image = _photo("obama.jpg")
    grey = load_image(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    faces = detector.detect(grey)
    assert len(faces) == 1
    _assert_plausible_face(faces[0], grey)
    colour = detector.detect(image)[0]
    error = np.linalg.norm(faces[0].points - colour.points, axis=1)
    assert np.median(error) < 0.01 * colour.size
    assert error.max() < 0.05 * colour.size


def test_small_face_in_large_frame(detector: LandmarkDetector) -> None:
    image = _photo("obama.jpg")
    height, width = image.shape[:2]
    canvas = np.full((3 * height, 3 * width, 3), 128, np.uint8)  # face ~9 % of the width
    canvas[height : 2 * height, width : 2 * width] = image
    reference = detector.detect(image)[0]
    faces = detector.detect(canvas)
    assert len(faces) == 1
    error = np.linalg.norm(faces[0].points - (reference.points + np.array([width, height])), axis=1)
    assert np.median(error) < 0.01 * reference.size


def test_face_far_off_in_a_wide_shot(detector: LandmarkDetector) -> None:
    # the face ~3 % of the photo's width: neither detector finds it in the whole photo, the
    # tiles do (it was "No face was found")
    image = _photo("obama.jpg")
    reference = detector.detect(image)[0]
    small = cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4), cv2.INTER_AREA)
    canvas = np.full((1800, 2400, 3), (90, 120, 150), np.uint8)
    canvas[700 : 700 + small.shape[0], 1000 : 1000 + small.shape[1]] = small
    faces = detector.detect(canvas)
    assert len(faces) == 1
    expected = reference.points / 4 + np.array([1000, 700])
    error = np.linalg.norm(faces[0].points - expected, axis=1)
    assert np.median(error) < 0.05 * faces[0].size


def test_tight_close_up(detector: LandmarkDetector) -> None:
    image = _photo("obama.jpg")
    reference = detector.detect(image)[0]
    x0, y0, x1, y1 = reference.bbox.astype(int)
    close_up = np.ascontiguousarray(image[y0:y1, x0:x1])  # cropped to the landmark box
    faces = detector.detect(close_up)
    assert len(faces) == 1
    error = np.linalg.norm(faces[0].points + np.array([x0, y0]) - reference.points, axis=1)
    assert np.median(error) < 0.02 * reference.size


def test_blank_image_has_no_face(detector: LandmarkDetector) -> None:
    grey = np.full((480, 640, 3), 128, np.uint8)
    assert detector.detect(grey) == []
    with pytest.raises(NoFaceError, match="No face was found") as info:
        detect_face(grey, detector=detector)
    assert "frontal" in str(info.value) and "mask" in str(info.value)
    assert "not mostly hidden" in str(info.value)  # a heavily covered face is refused too
    assert "upright" in str(info.value)  # so is a photo lying on its side


def test_two_faces_sorted_largest_first(detector: LandmarkDetector) -> None:
    big = _photo("astronaut.png")  # 512 x 512
    small = cv2.resize(_photo("obama.jpg"), (256, 320), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 512 + 256, 3), 255, np.uint8)
    canvas[:, :512] = big
    canvas[96 : 96 + 320, 512:] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].size > faces[1].size
    assert faces[0].points[:, 0].max() < 512 < faces[1].points[:, 0].min()
    first = detect_face(canvas, detector=detector)
    np.testing.assert_allclose(first.points, faces[0].points)
    second = detect_face(canvas, index=1, detector=detector)
    np.testing.assert_allclose(second.points, faces[1].points)
    with pytest.raises(ValueError, match="only 2 faces were found"):
        detect_face(canvas, index=2, detector=detector)
    chosen = choose_face(canvas, index=1, detector=detector)
    assert (chosen.index, chosen.found) == (1, 2)
    np.testing.assert_allclose(chosen.landmarks.points, faces[1].points)
    x0, y0, x1, y1 = (round(float(v)) for v in faces[1].bbox)
    assert chosen.describe() == f"the 2nd largest of 2 faces (x {x0}-{x1}, y {y0}-{y1} px)"
    assert chosen.summary()["faces_found"] == 2 and chosen.summary()["box_px"][0] > 512


def test_size_rank_words() -> None:
    ranks = [size_rank(index) for index in (0, 1, 2, 3, 10, 20)]
    assert ranks == [
        "the largest",
        "the 2nd largest",
        "the 3rd largest",
        "the 4th largest",
        "the 11th largest",
        "the 21st largest",
    ]


def test_large_image_maps_back_to_original_pixels(detector: LandmarkDetector) -> None:
    image = _photo("astronaut.png")
    factor = 4000 / image.shape[1]
    big = cv2.resize(image, (4000, 4000), interpolation=cv2.INTER_CUBIC)
    reference = detector.detect(image)[0]
    face = detector.detect(big)[0]
    _assert_plausible_face(face, big)
    scaled = reference.points * factor
    error = np.linalg.norm(face.points - scaled, axis=1)
    assert np.median(error) < 0.01 * face.size  # within a few px at the 512 px scale
    assert face.size == pytest.approx(reference.size * factor, rel=0.05)


def test_shared_between_threads(detector: LandmarkDetector) -> None:
    images = [_photo(name) for name in PHOTOS] * 2
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(detector.detect, images))
    for image, faces in zip(images, results, strict=True):
        np.testing.assert_array_equal(faces[0].points, detector.detect(image)[0].points)


def test_min_face_px_drops_small_faces() -> None:
    image = _photo("astronaut.png")
    with LandmarkDetector(min_face_px=10_000) as picky:
        assert picky.detect(image) == []


def test_bad_input_and_closed_detector() -> None:
    detector = LandmarkDetector()
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((64, 64, 3), np.float32))
    detector.close()
    assert detector.closed
    with pytest.raises(RuntimeError, match="closed"):
        detector.detect(np.zeros((64, 64, 3), np.uint8))


def test_default_detector_is_shared() -> None:
    first = default_detector()
    assert default_detector() is first
    first.close()
    replacement = default_detector()
    assert replacement is not first and not replacement.closed


def test_face_landmarks_is_read_only_and_checked() -> None:
    points = np.zeros((NUM_LANDMARKS, 2))
    face = FaceLandmarks(points=points, z=np.zeros(NUM_LANDMARKS), bbox=[0, 0, 3, 4])
    assert face.size == pytest.approx(5.0)
    assert face.score == 1.0
    with pytest.raises(ValueError, match="read-only"):
        face.points[0, 0] = 1.0
    with pytest.raises(ValueError, match="shape"):
        FaceLandmarks(points=np.zeros((468, 2)), z=np.zeros(468), bbox=np.zeros(4))
