"""Tests for d3dface.pose_init.solve_pose: poses recovered from exact projections."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from d3dface.pose_init import MIN_POSE_POINTS, solve_pose

_CV_FROM_GL = np.diag([1.0, -1.0, -1.0])


def _face_points(count: int = 200) -> np.ndarray:
    """(count, 3) points of a face-sized ellipsoid cap (metres), the model's frame."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(-1.0, 1.0, (count, 2)) * (0.07, 0.09)
    z = 0.05 * (1.0 - (xy[:, 0] / 0.08) ** 2 - (xy[:, 1] / 0.1) ** 2)
    return np.column_stack([xy, z])


def _project(
    points: np.ndarray, rotation: np.ndarray, translation: np.ndarray, focal: float, centre: float
) -> np.ndarray:
    """(N, 2) pixels of model points under the project's camera (y up, looking along -z)."""
    camera = _CV_FROM_GL @ (points @ rotation.T + translation).T
    return (camera[:2] / camera[2]).T * focal + centre


@pytest.mark.parametrize(
    ("distance", "focal"),
    [
        (0.6, 700.0),  # a portrait: the face fills much of the photo
        (30.0, 17_000.0),  # a face 2-3 % of a wide shot, in the fit's upscaled crop
    ],
)
def test_solve_pose_recovers_the_pose(distance: float, focal: float) -> None:
    points = _face_points()
    rotation = cv2.Rodrigues(np.array([0.1, -0.25, 0.05]))[0]
    translation = np.array([0.03, -0.02, -distance])
    pixels = _project(points, rotation, translation, focal, 128.0)
    found_rotation, found_translation = solve_pose(points, pixels, focal, (128.0, 128.0))
    np.testing.assert_allclose(found_rotation, rotation, atol=1e-4)
    np.testing.assert_allclose(found_translation, translation, rtol=1e-4, atol=1e-5)


def test_a_face_spanning_a_tiny_angle_is_placed_though_sqpnp_refuses_it() -> None:
    # a face 3 % of a 2400 px photo crashed the pipeline with OpenCV's assertion
    # "point_coordinate_variance >= POINT_VARIANCE_THRESHOLD" (SQPnP's)
    # SQPnP asserts a variance of the normalised image points of at least 1e-5; a face ~80 px
    # wide at a focal of 17000 px has 5e-6
    points, focal, centre = _face_points(), 17_000.0, 450.0
    truth = np.array([-0.5, 0.6, -30.0])
    pixels = _project(points, np.eye(3), truth, focal, centre)
    camera = np.array([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])
    with pytest.raises(cv2.error, match="POINT_VARIANCE_THRESHOLD"):
        cv2.solvePnP(points, pixels, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    rotation, translation = solve_pose(points, pixels, focal, (centre, centre))
    np.testing.assert_allclose(rotation, np.eye(3), atol=1e-4)
    np.testing.assert_allclose(translation, truth, atol=1e-3)


def test_too_few_points_are_refused() -> None:
    points = _face_points(MIN_POSE_POINTS - 1)
    with pytest.raises(ValueError, match="landmarks are visible"):
        solve_pose(points, points[:, :2] * 1000.0, 700.0, (128.0, 128.0))
