"""Occlusion masks given by the user: one bool per photo pixel, True where the face is hidden."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from d3dface.imageio import ImageError

__all__ = ["check_mask", "check_user_mask", "load_mask", "read_mask_image"]


def check_mask(mask: np.ndarray, photo_shape: tuple[int, ...]) -> np.ndarray:
    """Validate a mask against its photo: ``(H, W)`` array -> ``(H, W)`` bool copy.

    Nonzero entries count as occluded, except in a floating-point mask, read as a soft one
    (a segmentation's probabilities, an anti-aliased drawing): hidden where at least 0.5. An
    all-zero mask (nothing hidden) is valid.

    Raises:
        ValueError: the mask is not a two-dimensional array of booleans or numbers, its size
            differs from the photo's ``(H, W)``, or it holds NaN or infinite values.
    """
    mask = np.asarray(mask)
    height, width = photo_shape[:2]
    if mask.ndim == 3:
        raise ValueError(
            f"the occlusion mask must be a 2-D (H, W) array, got shape {mask.shape}: pass one "
            "channel of a colour mask (e.g. mask[..., 0]), or its image file"
        )
    if mask.ndim != 2:
        raise ValueError(f"the occlusion mask must be a 2-D (H, W) array, got shape {mask.shape}")
    if mask.dtype != bool and not np.issubdtype(mask.dtype, np.number):
        raise ValueError(
            f"the occlusion mask must hold booleans or numbers, got dtype {mask.dtype}"
        )
    if mask.shape != (height, width):
        raise ValueError(
            f"the occlusion mask is {mask.shape[1]}x{mask.shape[0]} pixels but the photo is "
            f"{width}x{height}; draw the mask on the same photo at its full size"
        )
    if np.issubdtype(mask.dtype, np.inexact) and not np.isfinite(mask).all():
        raise ValueError(
            "the occlusion mask contains NaN or infinite values; use 0 (visible) and 1 (hidden)"
        )
    return mask >= 0.5 if np.issubdtype(mask.dtype, np.floating) else mask != 0


def check_user_mask(
    mask: np.ndarray | str | Path | bytes, photo_shape: tuple[int, ...]
) -> np.ndarray:
    """A user's mask (an ``(H, W)`` array, or an image file's path or bytes) validated for
    fitting.

    As :func:`check_mask` (files: :func:`load_mask`), and a mask that hides every pixel is
    refused: the face would be entirely hidden, leaving nothing to fit.

    Returns:
        ``(H, W)`` bool, True = hidden.

    Raises:
        ImageError: a mask file is missing or not an image.
        ValueError: see :func:`check_mask`; or the mask is white all over.
    """
    hidden = (
        load_mask(mask, photo_shape)
        if isinstance(mask, str | Path | bytes)
        else check_mask(mask, photo_shape)
    )
    if hidden.all():
        raise ValueError(
            "the occlusion mask is white all over: it hides the whole face, so no part of it is "
            "left to fit; paint only what covers the face (white = hidden, black = visible)"
        )
    return hidden


def load_mask(source: str | Path | bytes, photo_shape: tuple[int, ...]) -> np.ndarray:
    """Read a mask image (see :func:`read_mask_image`) for a photo of ``photo_shape``.

    Returns ``(H, W)`` bool, True = hidden.

    Raises:
        ImageError: the file is missing or not an image.
        ValueError: its size differs from the photo's.
    """
    return check_mask(read_mask_image(source), photo_shape)


def read_mask_image(source: str | Path | bytes) -> np.ndarray:
    """Decode a mask image (PNG etc.; white or any bright pixel = occluded) at its own size.

    ``source`` is the image file's path or its bytes. The EXIF orientation is applied as for
    photos; colour masks are converted to grey and thresholded at 128. A mask whose
    brightest pixel is 1 (a 0/1 mask, as ``Image.fromarray(mask.astype(np.uint8))`` saves a
    bool array) has its 1s hidden, as an array mask would. A mask with transparent and opaque
    pixels (strokes painted on a transparent layer) hides its opaque ones (alpha >= 128),
    whatever their colour; a mask opaque all over is read by its brightness.

    Returns:
        ``(h, w)`` bool, True = hidden, the image's own size (not checked against a photo).

    Raises:
        ImageError: the file is missing, a folder, or not an image (the message says which).
    """
    if isinstance(source, bytes):
        opened, label = io.BytesIO(source), "The mask data"
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            raise ImageError(f"Mask '{path}' is a folder; give the mask's image file.")
        if not path.is_file():
            raise ImageError(f"Mask file '{path}' does not exist; check the path.")
        opened, label = path, f"The mask file '{path}'"
    try:
        with Image.open(opened) as image:
            upright = ImageOps.exif_transpose(image)
            alpha = None
            if upright.has_transparency_data:  # an alpha channel, or a transparent colour
                alpha = np.asarray(upright.convert("RGBA").getchannel("A"))
            grey = np.asarray(upright.convert("L"))
    except (OSError, ValueError) as exc:
        raise ImageError(
            f"{label} is not an image file (could not decode it as a mask); use a PNG, white "
            "where the face is hidden."
        ) from exc
    if alpha is not None and alpha.min(initial=255) < 128 <= alpha.max(initial=0):
        return alpha >= 128
    # a 0/1 mask looks black all over, but its 1s are what it hides (check_mask: nonzero)
    return grey >= (1 if grey.max(initial=0) == 1 else 128)
