"""Rigid initialisation: the head pose that best projects a 3D point set onto 2D landmarks.

A perspective-n-point solve (OpenCV's SQPnP, a globally optimal solver, or EPnP for a face that
spans too small an angle for SQPnP; then Levenberg-Marquardt refinement) with the camera's
intrinsics fixed. OpenCV's camera has y down and looks along +z; the project's (OpenGL-like,
see :mod:`d3dface.render`) has y up and looks along -z, so both the rotation and the
translation are flipped by ``diag(1, -1, -1)``.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MIN_POSE_POINTS", "solve_pose"]

MIN_POSE_POINTS = 6
"""Fewest 2D-3D correspondences accepted for a pose (SQPnP needs 3; 6 guards against noise)."""

_GL_FROM_CV = np.diag([1.0, -1.0, -1.0])


def solve_pose(
    model_points: np.ndarray,
    image_points: np.ndarray,
    focal: float,
    principal_point: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation that map model points in front of a pinhole camera.

    Args:
        model_points: ``(N, 3)`` model-space points (metres).
        image_points: ``(N, 2)`` their pixel positions (u right, v down).
        focal: focal length in pixels (fx = fy).
        principal_point: ``(cx, cy)`` in pixels.

    Returns:
        ``R`` (3, 3) and ``t`` (3,), float64, such that ``R @ X + t`` is the camera-space
        point of model point X (camera looking down -z, so ``t[2] < 0``).

    Raises:
        ValueError: fewer than :data:`MIN_POSE_POINTS` points, or no pose puts the face in
            front of the camera.
    """
    if len(model_points) < MIN_POSE_POINTS:
        raise ValueError(
            f"only {len(model_points)} face landmarks are visible; at least {MIN_POSE_POINTS} "
            "are needed to place the head (the occlusion mask hides almost the whole face)"
        )
    camera = np.array(
        [[focal, 0.0, principal_point[0]], [0.0, focal, principal_point[1]], [0.0, 0.0, 1.0]]
    )
    objects = np.ascontiguousarray(model_points, dtype=np.float64)
    pixels = np.ascontiguousarray(image_points, dtype=np.float64)
    try:
        found, rvec, tvec = cv2.solvePnP(objects, pixels, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error:
        # SQPnP refuses points spanning a tiny angle (a face a few percent of a photo wide:
        # normalised coordinates' variance under its threshold, about 1e-5); EPnP has no limit
        found, rvec, tvec = cv2.solvePnP(objects, pixels, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if not found:
        raise ValueError("could not place the head from the landmarks (no pose solution)")
    rvec, tvec = cv2.solvePnPRefineLM(objects, pixels, camera, None, rvec, tvec)
    rotation_cv, _ = cv2.Rodrigues(rvec)
    rotation = _GL_FROM_CV @ rotation_cv
    translation = _GL_FROM_CV @ tvec.ravel()
    if translation[2] >= 0:
        raise ValueError("could not place the head from the landmarks (pose behind the camera)")
    return rotation, translation
