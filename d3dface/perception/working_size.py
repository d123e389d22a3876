"""The resolution a photo is worked on: large enough for the face, no larger.

The fit works in a 256 px crop around the face and the automatic mask in another, so pixels
beyond a few hundred across the face only cost time and memory: a 24-megapixel phone photo
whose face is 3000 px wide spent seconds guided-filtering the mask and rasterising the overlay
at full size, and held 2 GB. :func:`working_photo` shrinks a photo (with its landmarks and mask)
so that the face's landmark box is at most :data:`MAX_FACE_SIDE` pixels on its longer side;
:func:`mask_to_size` brings a mask found on it back to the photo's own size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from d3dface.perception.landmarks import FaceLandmarks

__all__ = ["MAX_FACE_SIDE", "WorkingPhoto", "mask_to_size", "width_height", "working_photo"]

MAX_FACE_SIDE = 640
"""Longest side, in pixels, of the face's landmark box in the photo worked on: two and a half
times the fit's 256 px crop, so the fit and the mask see the face as they would at full size."""

_FLOAT32_SLACK_PX = 0.01
"""Landmark boxes are float32 (about 0.0005 px apart at 8000 px): a face this much over the
limit fits, so that a shrunk face, whose box corners were rounded, is not shrunk again."""


@dataclass(frozen=True, eq=False)
class WorkingPhoto:
    """A photo at the resolution it is worked on.

    Attributes:
        photo: ``(h, w, 3)`` uint8 RGB.
        landmarks: the face's landmarks in its pixels.
        mask: ``(h, w)`` bool, True = hidden, or None when none was given.
        original_size: the original photo's ``(H, W)``.
    """

    photo: np.ndarray
    landmarks: FaceLandmarks
    mask: np.ndarray | None
    original_size: tuple[int, int]


def working_photo(
    photo: np.ndarray,
    landmarks: FaceLandmarks,
    mask: np.ndarray | None = None,
    max_face_side: int = MAX_FACE_SIDE,
) -> WorkingPhoto:
    """Shrink ``photo`` (and ``landmarks``, ``mask``) until the face fits ``max_face_side``.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB.
        landmarks: the face's landmarks in ``photo``'s pixels.
        mask: ``(H, W)`` bool (True = hidden) or None.
        max_face_side: the longest allowed side of the landmark box, pixels (``>= 1``).

    Returns:
        The :class:`WorkingPhoto`: ``photo``, ``landmarks`` and ``mask`` themselves when the
        face already fits (so a working photo's working photo is itself). Otherwise each side
        is scaled and rounded down, the photo resampled with ``cv2.INTER_AREA``, the mask by
        :func:`mask_to_size`, and the landmarks' x and y (and bbox) scaled by the factor each
        axis shrank, their depths (in x's units) by x's.
    """
    if max_face_side < 1:
        raise ValueError(f"max_face_side must be at least 1, got {max_face_side}")
    height, width = photo.shape[:2]
    x0, y0, x1, y1 = (float(value) for value in landmarks.bbox)
    face_side = max(x1 - x0, y1 - y0)
    if face_side <= max_face_side + _FLOAT32_SLACK_PX:
        return WorkingPhoto(photo, landmarks, mask, (height, width))
    # each side rounded down, so that the face fits and a working photo is its own
    shrink = max_face_side / face_side
    small_width, small_height = max(int(width * shrink), 1), max(int(height * shrink), 1)
    small = cv2.resize(photo, (small_width, small_height), interpolation=cv2.INTER_AREA)
    # pixel (i, j) covers [i, i + 1) x [j, j + 1), so coordinates scale by each axis' factor
    factor = np.array([small_width / width, small_height / height], np.float32)
    scaled = FaceLandmarks(
        points=landmarks.points * factor,
        z=landmarks.z * factor[0],
        bbox=landmarks.bbox * np.tile(factor, 2),
        score=landmarks.score,
    )
    small_mask = None if mask is None else mask_to_size(mask, (small_height, small_width))
    return WorkingPhoto(small, scaled, small_mask, (height, width))


def mask_to_size(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample a mask ``(h, w)`` bool to ``size`` ``(H, W)``: True where at least half of the
    target pixel is hidden (area-averaged when shrinking, bilinear when enlarging)."""
    height, width = size
    if mask.shape == (height, width):
        return mask.copy()
    shrinking = height * width < mask.shape[0] * mask.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    soft = cv2.resize(mask.astype(np.float32), (width, height), interpolation=interpolation)
    return soft >= 0.5


def width_height(size: tuple[int, ...]) -> list[int]:
    """An image's ``(H, W, ...)`` shape as ``[W, H]``, the order image sizes are written in."""
    return [int(size[1]), int(size[0])]
