"""A square working crop around one face, and the transform back to the photo.

Fitting runs at one fixed resolution whatever the photo's size: a square of
``margin x`` the landmark box's longer side, centred on the box, resampled to ``size`` pixels.
Coordinates follow :mod:`d3dface.perception.landmarks` (continuous pixels, pixel ``(i, j)``
covers ``[j, j + 1) x [i, i + 1)``), so a photo point ``p`` lands at
``(p - origin) * scale`` in the crop, exactly, for pixels and landmarks alike.

The parts of the crop that fall outside the photo, and every crop pixel whose resampling
footprint touches an occluded photo pixel, are marked unusable: the crop's pixels outside that
mask depend on unoccluded photo pixels only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["DEFAULT_CROP_MARGIN", "DEFAULT_CROP_SIZE", "FaceCrop", "crop_face"]

DEFAULT_CROP_SIZE = 256
"""Working resolution in pixels: the face spans about 170 px of it, where mediapipe's own
landmark model sees faces at 192-256 px; rendering costs grow with the pixel count."""

DEFAULT_CROP_MARGIN = 1.5
"""Crop side over the landmark box's longer side: the landmark box spans hairline to chin and
cheek to cheek, so 1.5 keeps the whole face (and some of the head) in the crop."""

_PAD_GREY = 0.5


@dataclass(frozen=True)
class FaceCrop:
    """The square crop of one face.

    Attributes:
        origin: ``(x0, y0)`` photo pixel coordinates of the crop's top-left corner (integers,
            possibly outside the photo).
        side: the crop's side in photo pixels.
        size: the crop's side in crop pixels.
        photo_size: ``(H, W)`` of the photo.
        image: ``(size, size, 3)`` float32 RGB in ``[0, 1]``.
        unusable: ``(size, size)`` bool, True where the crop pixel is outside the photo or
            depends on an occluded photo pixel.
    """

    origin: tuple[int, int]
    side: int
    size: int
    photo_size: tuple[int, int]
    image: np.ndarray
    unusable: np.ndarray

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return self.size / self.side

    @property
    def outside_photo(self) -> np.ndarray:
        """``(size, size)`` bool, True where the crop pixel's centre lies outside the photo
        (the grey padding of a face near the photo's border)."""
        steps = (np.arange(self.size) + 0.5) / self.scale
        x, y = steps + self.origin[0], steps + self.origin[1]
        height, width = self.photo_size
        return ((y < 0) | (y >= height))[:, None] | ((x < 0) | (x >= width))[None, :]

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Photo pixel coordinates ``(..., 2)`` -> crop pixel coordinates ``(..., 2)``."""
        return (np.asarray(points, dtype=np.float64) - self.origin) * self.scale

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates ``(..., 2)`` -> photo pixel coordinates ``(..., 2)``."""
        return np.asarray(points, dtype=np.float64) / self.scale + self.origin


def crop_face(
    image: np.ndarray,
    box_points: np.ndarray,
    occluded: np.ndarray | None = None,
    size: int = DEFAULT_CROP_SIZE,
    margin: float = DEFAULT_CROP_MARGIN,
) -> FaceCrop:
    """Cut and resample the square around some face points.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photo.
        box_points: ``(N, 2)`` photo pixel coordinates that the crop is centred on (the visible
            landmarks, so that the crop never depends on hidden ones).
        occluded: ``(H, W)`` bool occlusion mask of the photo (True = hidden), or None.
        size: crop side in pixels.
        margin: crop side over the longer side of the points' bounding box.

    Returns:
        The :class:`FaceCrop`. Both the image and the mask are resampled with
        ``cv2.INTER_AREA`` in float32, so a crop pixel counts as unusable exactly when its
        resampling weights touch an occluded or outside pixel.
    """
    if len(box_points) == 0:
        raise ValueError("cannot place a face crop without any visible landmark")
    height, width = image.shape[:2]
    low, high = np.min(box_points, axis=0), np.max(box_points, axis=0)
    side = max(int(np.ceil(margin * float(np.max(high - low)))), 1)
    x0, y0 = (int(np.floor(c - side / 2)) for c in (low + high) / 2)
    pixels = image.astype(np.float32) / 255.0
    hidden = (
        np.zeros((height, width), np.float32) if occluded is None else occluded.astype(np.float32)
    )
    window = _window(pixels, x0, y0, side, _PAD_GREY)
    hidden_window = _window(hidden, x0, y0, side, 1.0)
    crop_image = cv2.resize(window, (size, size), interpolation=cv2.INTER_AREA)
    unusable = cv2.resize(hidden_window, (size, size), interpolation=cv2.INTER_AREA) > 0.0
    return FaceCrop(
        origin=(x0, y0),
        side=side,
        size=size,
        photo_size=(height, width),
        image=np.clip(crop_image, 0.0, 1.0),
        unusable=unusable,
    )


def _window(array: np.ndarray, x0: int, y0: int, side: int, fill: float) -> np.ndarray:
    """The ``side`` x ``side`` window of ``array`` at ``(x0, y0)``, padded with ``fill``.

    ``array`` is ``(H, W)`` or ``(H, W, C)`` float32; the result has the same trailing shape.
    """
    height, width = array.shape[:2]
    window = np.full((side, side, *array.shape[2:]), fill, dtype=np.float32)
    src_x0, src_y0 = max(x0, 0), max(y0, 0)
    src_x1, src_y1 = min(x0 + side, width), min(y0 + side, height)
    if src_x1 > src_x0 and src_y1 > src_y0:
        window[src_y0 - y0 : src_y1 - y0, src_x0 - x0 : src_x1 - x0] = array[
            src_y0:src_y1, src_x0:src_x1
        ]
    return window
