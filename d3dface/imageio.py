"""Loading and validating input photos.

Every input accepted by :func:`load_image` comes out as one array layout: RGB ``uint8`` of shape
``(H, W, 3)``, upright (EXIF orientation applied), with any transparency composited onto white.
Every bad input raises :class:`ImageError`, whose message names the problem and what to do.

Importing this module lets Pillow read HEIC / HEIF (``pillow_heif``), the format phones
(iPhones by default) save photos in; Pillow reads AVIF itself.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "MIN_SIDE",
    "ImageError",
    "ImageSource",
    "downscale_to",
    "load_image",
]

MIN_SIDE = 32
"""Smallest accepted image side in pixels; anything smaller cannot hold a usable face."""
MAX_PIXELS = 64_000_000
"""Largest accepted image by default, in pixels: above the 48 and 50 megapixels of phone
cameras' full-size photos (an 8000 x 6000 photo decodes to 144 MB), below what would decode to
gigabytes from a small, highly compressed file."""
MAX_SIDE = 20_000
"""Longest accepted image side by default, in pixels."""

_FIX_HINT = "use a JPEG or PNG photo"

pillow_heif.register_heif_opener()


class ImageError(ValueError):
    """An input image is missing, unreadable, corrupt, of an unsupported kind, or of a bad size."""


ImageSource = str | Path | bytes | np.ndarray | Image.Image


def load_image(
    source: ImageSource,
    max_pixels: int = MAX_PIXELS,
    max_side: int = MAX_SIDE,
) -> np.ndarray:
    """Load a photo as an upright RGB ``uint8`` array.

    Args:
        source: One of
            - a file path (``str`` or ``Path``) or the encoded file bytes of any format Pillow
              reads (JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF, ...). The EXIF orientation is
              applied.
            - a ``PIL.Image.Image`` (its EXIF orientation is applied too).
            - a numpy array in RGB(A) channel order (not OpenCV's BGR) of shape ``(H, W)``,
              ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` with dtype ``uint8``, ``uint16``
              (full 0..65535 range) or floating point with values in ``[0, 1]``.
        max_pixels: Largest accepted ``H * W``. For files and bytes this is checked from the
            header, before any pixels are decoded. Pillow's own decompression-bomb guard
            (``2 * PIL.Image.MAX_IMAGE_PIXELS``) still applies on top of it.
        max_side: Largest accepted length of the longer side in pixels (guards against
            extreme strips that pass ``max_pixels``), checked at the same time.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB array, C-contiguous, never sharing memory with ``source``.
        Greyscale is replicated to three channels, 16-bit data is scaled (not clipped) to
        8 bits, CMYK and other colour modes are converted to RGB, and transparency is
        composited onto white.

    Raises:
        ImageError: ``source`` is missing, empty, truncated, not an image, of an unsupported
            type or dtype, contains NaN/inf, is larger than ``max_pixels`` / ``max_side``, or has
            a side shorter than :data:`MIN_SIDE`.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, max_pixels, max_side)
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, "The given image", max_pixels, max_side)
        return _pil_to_rgb(source, "The given image")
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"The image data is empty (0 bytes); {_FIX_HINT}.")
        return _decode(io.BytesIO(source), "The image data", max_pixels, max_side)
    if isinstance(source, str) and source.lower().startswith(("http://", "https://")):
        raise ImageError(
            f"'{source}' is a web address; d3dface reads photos from files: download it first "
            "and give the file's path."
        )
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        label = f"'{path}'"
        if not path.exists():
            raise ImageError(f"Image file {label} does not exist; check the path.")
        if not path.is_file():
            raise ImageError(f"{label} is not a file; give the path of a JPEG or PNG photo.")
        if path.stat().st_size == 0:
            raise ImageError(f"{label} is empty (0 bytes); {_FIX_HINT}.")
        return _decode(path, label, max_pixels, max_side)
    if type(source).__name__ == "Tensor":
        hint = (
            " (a torch image tensor: tensor.cpu().numpy(), after .permute(1, 2, 0) if its "
            "channels come first)."
        )
    elif isinstance(source, list | tuple):
        hint = " (one photo at a time: for several, call once per photo)."
    else:
        hint = "."
    raise ImageError(
        f"Cannot load an image from a {type(source).__name__}; give a file path, encoded bytes, "
        f"a numpy array or a PIL image{hint}"
    )


def downscale_to(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink ``image`` so its longer side is at most ``max_side`` pixels.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array of any dtype OpenCV can resize.
        max_side: Largest allowed length of the longer side, ``>= 1``.

    Returns:
        ``(resized, scale)``: the resized array (same dtype and channel count; resampled with
        ``cv2.INTER_AREA``), and the factor applied, ``new_size / old_size`` (``<= 1``).
        Coordinates map as ``x_small = x * scale``. An image that already fits is returned
        as is, with scale ``1.0``.

    Raises:
        ValueError: ``max_side < 1`` or ``image`` is not 2- or 3-dimensional.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    height, width = image.shape[:2]
    longer = max(height, width)
    if longer <= max_side:
        return image, 1.0
    scale = max_side / longer
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
    if image.ndim == 3 and resized.ndim == 2:  # OpenCV drops a trailing channel axis of size 1
        resized = resized[:, :, None]
    return resized, scale


def _check_size(width: int, height: int, label: str, max_pixels: int, max_side: int) -> None:
    """Raise :class:`ImageError` unless a ``width`` x ``height`` image is within the limits."""
    if width * height > max_pixels:
        raise ImageError(
            f"{label} is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,} pixels; shrink the photo."
        )
    if max(width, height) > max_side:
        raise ImageError(
            f"{label} is {width}x{height} pixels; its longer side exceeds the limit of "
            f"{max_side:,} pixels; shrink the photo."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{label} is only {width}x{height} pixels, too small to hold a face; use a photo at "
            f"least {MIN_SIDE} pixels on each side (a few hundred pixels across the face is best)."
        )


def _decode(source: Path | io.BytesIO, label: str, max_pixels: int, max_side: int) -> np.ndarray:
    """Decode an encoded image, checking its header size before decoding any pixels."""
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{label} is too large to decode safely ({exc}); shrink the photo to at most "
            f"{max_pixels:,} pixels."
        ) from exc
    except PermissionError as exc:
        raise ImageError(
            f"Could not read {label} (permission denied); check its permissions."
        ) from exc
    except Exception as exc:  # Pillow raises many kinds of errors on malformed data.
        raise ImageError(
            f"{label} is not an image file (could not decode it); {_FIX_HINT}."
        ) from exc
    with image:
        _check_size(image.width, image.height, label, max_pixels, max_side)
        return _pil_to_rgb(image, label)


def _pil_to_rgb(image: Image.Image, label: str) -> np.ndarray:
    """Convert a Pillow image of any mode to an upright ``(H, W, 3)`` ``uint8`` RGB array.

    The pixels are fully loaded first. With Pillow's default
    ``ImageFile.LOAD_TRUNCATED_IMAGES = False`` a truncated file is an error here, which is
    reported as :class:`ImageError` rather than returning a partly grey image.
    """
    try:
        image.load()
    except Exception as exc:  # Pillow raises many kinds of errors on malformed data.
        raise ImageError(
            f"{label} is truncated or corrupt (could not decode all its pixels: {exc}); "
            f"re-export or re-download the photo, or {_FIX_HINT}."
        ) from exc
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # Malformed EXIF blocks raise assorted errors inside Pillow.
        raise ImageError(
            f"{label} has unreadable EXIF metadata ({exc}); re-save the photo without metadata."
        ) from exc
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        return _grey_to_rgb(_scale_16bit(np.asarray(image)))
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageError(f"{label} contains NaN or infinite pixel values; {_FIX_HINT}.")
        if values.max(initial=0.0) <= 1.0:
            values = values * 255.0
        return _grey_to_rgb(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if "A" in mode or "a" in mode or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return _composite_on_white(rgba[:, :, :3], rgba[:, :, 3] / 255.0)
    try:
        rgb = image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(
            f"{label} uses the colour mode {mode!r}, which cannot be converted to RGB; {_FIX_HINT}."
        ) from exc
    return np.array(rgb, dtype=np.uint8)


def _array_to_rgb(array: np.ndarray, max_pixels: int, max_side: int) -> np.ndarray:
    """Validate and convert a numpy image (see :func:`load_image`) to ``(H, W, 3)`` ``uint8``."""
    label = "The image array"
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        channels_first = array.ndim == 3 and array.shape[0] in (1, 3, 4)
        raise ImageError(
            f"{label} has shape {array.shape}; expected (H, W), (H, W, 1), (H, W, 3) or "
            "(H, W, 4) in RGB(A) order"
            + (
                "; for channels first (C, H, W), give array.transpose(1, 2, 0)."
                if channels_first
                else "."
            )
        )
    _check_size(array.shape[1], array.shape[0], label, max_pixels, max_side)
    if array.dtype == np.uint8:
        pixels = array.copy()
    elif array.dtype == np.uint16:
        pixels = _scale_16bit(array)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError(f"{label} contains NaN or infinite values; replace them first.")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ImageError(
                f"{label} is floating point with values in [{low:g}, {high:g}]; float images "
                "must lie in [0, 1] (divide 0..255 data by 255, or pass uint8)."
            )
        pixels = np.rint(array.astype(np.float32) * 255.0).astype(np.uint8)
    else:
        raise ImageError(f"{label} has dtype {array.dtype}; use uint8, uint16 or float in [0, 1].")
    if pixels.ndim == 2:
        return _grey_to_rgb(pixels)
    if pixels.shape[2] == 4:
        return _composite_on_white(pixels[:, :, :3], pixels[:, :, 3] / 255.0)
    return np.ascontiguousarray(pixels)


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit intensities (integer array; values clipped to ``[0, 65535]``) to ``uint8``.

    ``65535 -> 255`` and ``257 * k -> k``: the full 16-bit range maps onto the full 8-bit range.
    """
    return np.rint(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """Replicate an ``(H, W)`` ``uint8`` image into ``(H, W, 3)``."""
    return np.repeat(grey[:, :, None], 3, axis=2)


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend ``rgb`` (``(H, W, 3)``, 0..255) over white with ``alpha`` (``(H, W)``, 0..1).

    Returns:
        ``(H, W, 3)`` ``uint8`` array.
    """
    a = alpha[:, :, None].astype(np.float32)
    blended = rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
