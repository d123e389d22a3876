"""Occlusion masks given by the user: one bool per photo pixel, True where the face is hidden."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from d3dface.imageio import ImageError

__all__ = ["check_mask", "load_mask"]


def check_mask(mask: np.ndarray, photo_shape: tuple[int, ...]) -> np.ndarray:
    """Validate a mask against its photo: ``(H, W)`` array -> ``(H, W)`` bool copy.

    Nonzero entries count as occluded. Raises ValueError when the mask is not two-dimensional
    or its size differs from the photo's ``(H, W)``.
    """
    mask = np.asarray(mask)
    height, width = photo_shape[:2]
    if mask.ndim != 2:
        raise ValueError(f"the occlusion mask must be a 2-D (H, W) array, got shape {mask.shape}")
    if mask.shape != (height, width):
        raise ValueError(
            f"the occlusion mask is {mask.shape[1]}x{mask.shape[0]} pixels but the photo is "
            f"{width}x{height}; draw the mask on the same photo at its full size"
        )
    return mask != 0


def load_mask(path: str | Path, photo_shape: tuple[int, ...]) -> np.ndarray:
    """Read a mask image (PNG etc.; white or any bright pixel = occluded) for a photo.

    The EXIF orientation is applied as for photos; colour masks are converted to grey and
    thresholded at 128; transparency is ignored. Returns ``(H, W)`` bool.

    Raises:
        ImageError: the file is missing or not an image.
        ValueError: its size differs from the photo's.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ImageError(f"Mask file '{path}' does not exist; check the path.")
    try:
        with Image.open(path) as image:
            grey = np.asarray(ImageOps.exif_transpose(image).convert("L"))
    except (OSError, ValueError) as exc:
        raise ImageError(f"'{path}' is not an image file (could not decode it as a mask).") from exc
    return check_mask(grey >= 128, photo_shape)
