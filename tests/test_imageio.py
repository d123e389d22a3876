"""Tests for d3dface.imageio: decoding, colour conversion, validation and downscaling."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from shared_photos import shared_photo

from d3dface.imageio import ImageError, downscale_to, load_image


def _gradient_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    """(H, W, 3) uint8 test pattern with distinct channels."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [x * 255 // (width - 1), y * 255 // (height - 1), (x + y) % 256], axis=2
    ).astype(np.uint8)


def _jpeg_bytes(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def _assert_rgb8(image: np.ndarray, height: int, width: int) -> None:
    assert image.dtype == np.uint8
    assert image.shape == (height, width, 3)
    assert image.flags.c_contiguous


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "HEIF", "AVIF"])
def test_formats_load_as_rgb(tmp_path: Path, fmt: str) -> None:
    # HEIF: phones' photos (.heic), read through pillow_heif, which d3dface.imageio registers
    rgb = _gradient_rgb()
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(rgb).save(path, fmt)
    image = load_image(path)
    _assert_rgb8(image, 48, 64)
    lossless = fmt in ("PNG", "BMP", "TIFF")
    assert np.abs(image.astype(int) - rgb).mean() < (0.01 if lossless else 6)


def test_path_str_bytes_and_pil_agree(tmp_path: Path) -> None:
    rgb = _gradient_rgb()
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    for source in (path, str(path), path.read_bytes(), Image.open(path), rgb):
        np.testing.assert_array_equal(load_image(source), rgb)


def test_array_input_is_copied() -> None:
    rgb = _gradient_rgb()
    image = load_image(rgb)
    image[:] = 0
    assert rgb.any()


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_file_becomes_rgb(tmp_path: Path, mode: str) -> None:
    grey = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(grey).convert(mode).save(path)
    image = load_image(path)
    _assert_rgb8(image, 48, 64)
    np.testing.assert_array_equal(image[:, :, 0], image[:, :, 2])
    expected = np.asarray(Image.fromarray(grey).convert(mode).convert("L"))
    np.testing.assert_array_equal(image[:, :, 1], expected)


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([0, 257, 1000, 32896, 60000, 65535], dtype=np.uint16)
    grey = np.tile(np.repeat(values, 8), (40, 1))  # (40, 48)
    path = tmp_path / "deep.png"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    _assert_rgb8(image, 40, 48)
    expected = np.rint(values / 257.0).astype(np.uint8)  # 0, 1, 4, 128, 233, 255
    np.testing.assert_array_equal(image[0, ::8, 0], expected)


def test_float_tiff_in_unit_range(tmp_path: Path) -> None:
    grey = np.linspace(0.0, 1.0, 40 * 40, dtype=np.float32).reshape(40, 40)
    path = tmp_path / "float.tiff"
    Image.fromarray(grey, mode="F").save(path)
    image = load_image(path)
    assert image[0, 0, 0] == 0
    assert image[-1, -1, 0] == 255


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[:, :, 0] = 200
    rgba[:, :20, 3] = 255  # left half opaque red, right half transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_image(path)
    np.testing.assert_array_equal(image[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(image[0, 39], [255, 255, 255])


def test_la_and_palette_transparency_composited_on_white(tmp_path: Path) -> None:
    la = Image.merge("LA", [Image.new("L", (40, 40), 0), Image.new("L", (40, 40), 0)])
    la.save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(tmp_path / "la.png")[5, 5], [255, 255, 255])
    palette = Image.new("P", (40, 40), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.save(tmp_path / "p.png", transparency=1)
    np.testing.assert_array_equal(load_image(tmp_path / "p.png")[5, 5], [255, 255, 255])


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (48, 40), (0, 255, 255, 0))  # pure red in CMYK
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(_jpeg_bytes(cmyk))
    assert Image.open(path).mode == "CMYK"
    image = load_image(path)
    _assert_rgb8(image, 40, 48)
    red, green, blue = image[20, 24].astype(int)
    assert red > 230 and green < 25 and blue < 25


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = np.zeros((40, 64, 3), dtype=np.uint8)
    rgb[:, :32] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_jpeg_bytes(Image.fromarray(rgb), exif=exif.tobytes()))
    image = load_image(path)
    _assert_rgb8(image, 64, 40)
    assert image[:20].mean() > 200  # the stored left half is now the top half
    assert image[44:].mean() < 50


@pytest.mark.parametrize(
    "array",
    [
        np.full((40, 40), 128, np.uint8),
        np.full((40, 40, 1), 128, np.uint8),
        np.full((40, 40, 3), 128, np.uint8),
        np.full((40, 40, 4), 128, np.uint8),
        np.full((40, 40, 3), 128 * 257, np.uint16),
        np.full((40, 40, 3), 128 / 255, np.float32),
        np.full((40, 40), 128 / 255, np.float64),
    ],
    ids=["hw", "hw1", "hw3", "hw4", "uint16", "float32", "float64-grey"],
)
def test_array_layouts(array: np.ndarray) -> None:
    image = load_image(array)
    _assert_rgb8(image, 40, 40)
    expected = 128 if array.ndim < 3 or array.shape[2] != 4 else round(128 * 128 / 255 + 127)
    assert np.all(image == expected)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((40, 40, 3), np.nan, np.float32), "NaN"),
        (np.full((40, 40, 3), np.inf, np.float64), "NaN or infinite"),
        (np.full((40, 40, 3), 2.0, np.float32), "[0, 1]"),
        (np.zeros((40, 40, 3), np.int64), "dtype int64"),
        (np.zeros((40, 40, 2), np.uint8), "shape"),
        (np.zeros((2, 40, 40, 3), np.uint8), "shape"),
        (
            np.zeros((3, 40, 50), np.uint8),
            "channels first .* give array.transpose",
        ),
    ],
    ids=["nan", "inf", "float-range", "int64", "two-channels", "4d", "channels-first"],
)
def test_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(ImageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_image(array)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "face.jpg"
    with pytest.raises(ImageError, match="does not exist") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_a_web_address_or_a_tensor_is_refused_saying_what_to_give() -> None:
    # a URL was read as the path 'https:/host/face.jpg' that "does not exist"
    with pytest.raises(
        ImageError, match=r"'https://example\.com/face\.jpg' is a web address.*download"
    ):
        load_image("https://example.com/face.jpg")
    with pytest.raises(ImageError, match=r"from a Tensor.*tensor\.cpu\(\)\.numpy\(\)"):
        load_image(torch.zeros(3, 40, 40))  # type: ignore[arg-type]
    # a list of photos was refused without saying that one photo is taken at a time
    with pytest.raises(ImageError, match=r"from a list.*one photo at a time.*once per photo"):
        load_image(["a.jpg", "b.jpg"])  # type: ignore[arg-type]


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


def test_empty_file_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(path)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a photo\n")
    with pytest.raises(ImageError, match=r"not an image file.*JPEG or PNG") as info:
        load_image(path)
    assert "notes.txt" in str(info.value)


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # Pillow's default, relied upon
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    data = _jpeg_bytes(Image.fromarray(noise))
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)


def test_tiny_image_is_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    with pytest.raises(ImageError, match="too small to hold a face"):
        load_image(buffer.getvalue())
    with pytest.raises(ImageError, match="too small to hold a face"):
        load_image(np.zeros((20, 400, 3), np.uint8))


def test_huge_header_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(path)  # ~12 kB on disk, 1e8 pixels
    start = time.perf_counter()
    with pytest.raises(ImageError, match="10000x10000") as info:
        load_image(path, max_pixels=50_000_000)
    assert time.perf_counter() - start < 0.5
    assert "50,000,000" in str(info.value)


def test_a_phones_full_size_photo_loads(tmp_path: Path) -> None:
    # 48 megapixels (8000 x 6000) was refused by a 40-megapixel limit
    path = tmp_path / "phone.png"
    Image.new("1", (8000, 6000)).save(path)
    assert load_image(path).shape == (6000, 8000, 3)


def test_pillow_decompression_bomb_is_an_image_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (15_000, 15_000)).save(path)  # above 2 * PIL.Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match="too large"):
        load_image(path, max_pixels=10**9, max_side=10**6)


def test_max_side_limit() -> None:
    strip = np.zeros((40, 5000, 3), np.uint8)
    with pytest.raises(ImageError, match="longer side"):
        load_image(strip, max_side=4000)
    assert load_image(strip).shape == (40, 5000, 3)


def test_unsupported_source_type() -> None:
    with pytest.raises(ImageError, match="list"):
        load_image([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "astronaut.png"])
def test_shared_photos_load(name: str) -> None:
    image = load_image(shared_photo(name))
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_downscale_to() -> None:
    image = np.zeros((1000, 400, 3), np.uint8)
    small, scale = downscale_to(image, 500)
    assert small.shape == (500, 200, 3)
    assert scale == pytest.approx(0.5)
    same, scale = downscale_to(image, 1000)
    assert same is image and scale == 1.0
    grey, _ = downscale_to(np.zeros((300, 300, 1), np.float32), 100)
    assert grey.shape == (100, 100, 1)
    with pytest.raises(ValueError, match="max_side"):
        downscale_to(image, 0)
