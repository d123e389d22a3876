"""Bad and unusual inputs through the Python API and the CLI: each gets a clear error or a
sensible result, and nothing else is written."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shared_photos import shared_photo

from d3dface import Diverse3DFace
from d3dface.bench.occluders import draw_plain_face_mask
from d3dface.cli import main
from d3dface.imageio import load_image
from d3dface.perception.landmarks import NoFaceError, detect_face
from d3dface.perception.occlusion_mask import load_mask

FAST = {"n": 2, "iterations": 3, "fit_iterations": 10, "mask_method": "none"}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(shared_photo("obama.jpg"))


@pytest.fixture(scope="module")
def lower_face_mask(photo: np.ndarray) -> np.ndarray:
    """(H, W) bool: a rectangle from below the nose to the chin."""
    return draw_plain_face_mask(photo, detect_face(photo).points)[1]


@pytest.fixture(scope="module")
def pipeline() -> Diverse3DFace:
    return Diverse3DFace.from_pretrained()


def _save(image: Image.Image, path: Path, **kwargs: object) -> Path:
    image.save(path, **kwargs)
    return path


@pytest.fixture(scope="module")
def variants(photo: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The photo as greyscale, RGBA, CMYK JPEG, 16-bit PNG and EXIF-rotated JPEG files."""
    folder = tmp_path_factory.mktemp("variants")
    image = Image.fromarray(photo)
    grey16 = (np.asarray(image.convert("L")).astype(np.uint16) * 257).astype(np.uint16)
    rotated = image.transpose(Image.Transpose.ROTATE_270)  # stored turned clockwise ...
    exif = Image.Exif()
    exif[0x0112] = 8  # ... and tagged "turn 90 degrees counter-clockwise to view"
    return {
        "greyscale": _save(image.convert("L"), folder / "grey.png"),
        "rgba": _save(image.convert("RGBA"), folder / "rgba.png"),
        "cmyk": _save(image.convert("CMYK"), folder / "cmyk.jpg"),
        "16-bit": _save(Image.fromarray(grey16), folder / "grey16.png"),
        "exif-rotated": _save(rotated, folder / "exif.jpg", exif=exif),
    }


@pytest.mark.parametrize("kind", ["greyscale", "rgba", "cmyk", "16-bit", "exif-rotated"])
def test_unusual_but_valid_photos_reconstruct(
    pipeline: Diverse3DFace,
    variants: dict[str, Path],
    photo: np.ndarray,
    lower_face_mask: np.ndarray,
    kind: str,
) -> None:
    result = pipeline(variants[kind], mask=lower_face_mask, **FAST)
    assert result.photo.shape == photo.shape  # upright, RGB, full size
    grey = photo.astype(float).mean(-1)
    assert np.abs(result.photo.astype(float).mean(-1) - grey).mean() < 12  # same way up
    assert result.samples.shape[0] == 2 and bool(result.target.occluded.any())


def test_bad_files_in_a_folder_are_each_reported_and_nothing_else_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "notes.jpg").write_text("this is text, not a JPEG")
    Image.new("RGB", (200, 200), "white").save(photos / "truncated.jpg", quality=90)
    data = (photos / "truncated.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("RGB", (1, 1)).save(photos / "tiny.png")
    Image.new("RGB", (256, 256), (120, 160, 90)).save(photos / "no_face.png")
    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "--quiet", "-n", "2", "--out", str(out)]) == 1
    errors = capsys.readouterr().err
    assert "empty (0 bytes)" in errors
    assert "not an image" in errors or "cannot identify" in errors
    assert "truncated" in errors or "corrupt" in errors
    assert "too small" in errors or "at least" in errors
    assert "no face" in errors.lower()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["failed"]) == 5 and not summary["done"]
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert not list(private_tmp.iterdir())  # no temporary file left behind


def test_a_photo_over_the_size_limit_is_one_line_that_says_shrink_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the line ended "(or raise max_pixels if you trust it)": no option of the CLI (nor of
    # the pipeline, which loads with the default limits) can
    huge = _save(Image.new("1", (10_000, 7_000)), tmp_path / "huge.png")  # 70 megapixels
    out = tmp_path / "out"
    assert main(["reconstruct", str(huge), "--quiet", "-n", "2", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "shrink the photo" in error
    assert "max_pixels" not in error and not out.exists()


def test_a_folder_of_one_photo_is_still_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # with one photo in it, a folder got no summary.json and the exit status of a photo
    # given alone (2), not the folder's count of failures (1)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "notes.jpg").write_text("this is text, not a JPEG")
    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "--quiet", "-n", "2", "--out", str(out)]) == 1
    assert "error: 1 of 1 photos failed" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert [Path(entry["image"]).name for entry in summary["failed"]] == ["notes.jpg"]


def test_no_face_is_a_clear_error(pipeline: Diverse3DFace) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match=r"(?i)no face"):
        pipeline(noise, **FAST)


def test_several_faces_pick_the_largest_or_the_one_asked_for(
    pipeline: Diverse3DFace, photo: np.ndarray
) -> None:
    small = np.asarray(Image.fromarray(photo).resize((photo.shape[1] // 2, photo.shape[0] // 2)))
    canvas = np.full((photo.shape[0], photo.shape[1] + small.shape[1], 3), 255, np.uint8)
    canvas[:, : photo.shape[1]] = photo
    canvas[: small.shape[0], photo.shape[1] :] = small
    largest = pipeline(canvas, **FAST)
    other = pipeline(canvas, face_index=1, **FAST)
    assert largest.fit.landmarks.points[:, 0].mean() < photo.shape[1]
    assert other.fit.landmarks.points[:, 0].mean() > photo.shape[1]
    assert (largest.face.index, largest.face.found) == (0, 2)
    assert (other.face.index, other.face.found) == (1, 2)
    assert other.face.landmarks.bbox[0] > photo.shape[1]  # in the given photo's pixels
    with pytest.raises(ValueError, match="face index 5"):
        pipeline(canvas, face_index=5, **FAST)


def test_cli_says_which_of_several_faces_it_used(
    photo: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = np.asarray(Image.fromarray(photo).resize((photo.shape[1] // 2, photo.shape[0] // 2)))
    canvas = np.full((photo.shape[0], photo.shape[1] + small.shape[1], 3), 255, np.uint8)
    canvas[:, : photo.shape[1]] = photo
    canvas[: small.shape[0], photo.shape[1] :] = small
    path = _save(Image.fromarray(canvas), tmp_path / "two.png")
    fast = ["-n", "2", "--iterations", "3", "--fit-iterations", "10", "--mask-method", "none"]
    for index, out in (("0", tmp_path / "largest"), ("1", tmp_path / "other")):
        args = ["reconstruct", str(path), *fast, "--face-index", index, "--formats", "glb"]
        assert main([*args, "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "used the largest of 2 faces" in printed and "--face-index 1 takes the 2nd" in printed
    assert "used the 2nd largest of 2 faces" in printed and "--face-index 0 takes the" in printed
    face = json.loads((tmp_path / "other" / "metrics.json").read_text())["face"]
    assert (face["index"], face["faces_found"]) == (1, 2)
    assert face["box_px"][0] > photo.shape[1]

    capsys.readouterr()
    one = _save(Image.fromarray(photo), tmp_path / "one.png")
    assert main(["reconstruct", str(one), *fast, "--quiet", "--out", str(tmp_path / "one")]) == 0
    assert "faces" not in capsys.readouterr().out  # one face: nothing to say


def test_a_face_cut_by_the_photo_edge_still_reconstructs(
    pipeline: Diverse3DFace, photo: np.ndarray
) -> None:
    points = detect_face(photo).points
    cut = photo[:, : int(points[:, 0].mean() + 0.25 * np.ptp(points[:, 0]))].copy()
    result = pipeline(cut, **FAST)
    assert result.samples.shape[0] == 2
    assert result.fit.landmark_visible.sum() < 478  # the off-photo landmarks were left out


@pytest.mark.parametrize(
    ("make_mask", "message"),
    [
        (lambda shape: np.zeros((shape[0] // 2, shape[1]), bool), "same photo at its full size"),
        (lambda shape: np.ones(shape[:2], bool), "landmarks are visible|hides the whole face"),
        (lambda shape: np.full(shape[:2], np.nan), "NaN"),
        (lambda shape: np.zeros((*shape[:2], 2), bool), "2-D"),
    ],
    ids=["other size", "all occluded", "nan", "3-d"],
)
def test_bad_masks_are_refused_with_a_message(
    pipeline: Diverse3DFace, photo: np.ndarray, make_mask: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pipeline(photo, mask=make_mask(photo.shape), **FAST)  # type: ignore[operator]


def test_a_mask_file_of_zeros_and_ones_hides_its_ones(
    pipeline: Diverse3DFace, photo: np.ndarray, lower_face_mask: np.ndarray, tmp_path: Path
) -> None:
    # Image.fromarray(mask.astype(np.uint8)) saves a bool mask as 0/1, black to the eye: it
    # was read as hiding nothing, and the run went on as if no mask had been given
    path = _save(Image.fromarray(lower_face_mask.astype(np.uint8)), tmp_path / "mask01.png")
    result = pipeline(photo, mask=path, **FAST)
    np.testing.assert_array_equal(result.mask, lower_face_mask)
    assert bool(result.target.occluded.any()) and result.metrics


@pytest.mark.parametrize("paint", ["red on transparent", "white on transparent palette"])
def test_a_mask_painted_on_a_transparent_layer_hides_its_opaque_strokes(
    photo: np.ndarray, lower_face_mask: np.ndarray, tmp_path: Path, paint: str
) -> None:
    # its alpha was dropped: red strokes read as visible (grey below 128), and strokes over
    # transparent white as hidden all over
    if paint.startswith("red"):
        layer = np.zeros((*lower_face_mask.shape, 4), np.uint8)
        layer[..., :3] = 255  # transparent white around the strokes
        layer[lower_face_mask] = (230, 20, 20, 255)
        image = Image.fromarray(layer, "RGBA")
    else:
        image = Image.fromarray(lower_face_mask.astype(np.uint8), "P")
        image.putpalette([0, 0, 0, 255, 255, 255])
        image.info["transparency"] = 0
    path = _save(image, tmp_path / "strokes.png")
    np.testing.assert_array_equal(load_mask(path, photo.shape), lower_face_mask)
    opaque = _save(image.convert("RGB"), tmp_path / "opaque.png")  # read by brightness
    expected = lower_face_mask if paint.startswith("white") else ~lower_face_mask  # bright
    np.testing.assert_array_equal(load_mask(opaque, photo.shape), expected)


def test_an_empty_mask_means_nothing_is_hidden(pipeline: Diverse3DFace, photo: np.ndarray) -> None:
    result = pipeline(photo, mask=np.zeros(photo.shape[:2], bool), **FAST)
    assert not result.mask.any() and not bool(result.target.occluded.any())
    assert result.metrics == {}  # no occluded vertices: no ASD-O to report


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("n", 0, "number of samples"),
        ("n", 2.5, r"number of samples \(n\) must be a whole number"),
        ("n", 10_000, "number of samples"),
        ("k", -1.0, "k must"),
        ("n_sigma", 1e9, "n_sigma"),
        ("seed", -3, "seed"),
        ("iterations", -1, "iterations"),
    ],
)
def test_absurd_settings_are_refused_before_any_work(
    pipeline: Diverse3DFace, photo: np.ndarray, option: str, value: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pipeline(photo, **{**FAST, option: value})


def test_absurd_cli_settings_exit_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_photo("obama.jpg")
    assert main(["reconstruct", str(path), "-n", "0", "--out", str(tmp_path / "o")]) == 2
    assert "number of samples" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        main(["reconstruct", str(path), "-n", "many", "--out", str(tmp_path / "o")])
