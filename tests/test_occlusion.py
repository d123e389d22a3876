"""Occlusion masks: user masks, facexlib's parser (through a stand-in), the model-based default,
the drawn occluders, the ``mask`` command and the occlusion benchmark."""

from __future__ import annotations

import io
import json
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from shared_photos import shared_photo

from d3dface.batch import list_inputs
from d3dface.bench.__main__ import main as bench_main
from d3dface.bench.occluders import OCCLUDER_KINDS, draw_occluder_of_type
from d3dface.bench.synthetic import synthetic_face, synthetic_pattern
from d3dface.cli import main
from d3dface.facemodel.landmark_embedding import project_surface_points
from d3dface.facemodel.model import FaceModel
from d3dface.imageio import ImageError, load_image
from d3dface.perception.landmarks import LandmarkDetector
from d3dface.perception.occlusion import OcclusionResult, segment_occlusion
from d3dface.perception.occlusion_facexlib import (
    FACEXLIB_CLASSES,
    FacexlibUnavailableError,
    load_face_parser,
)
from d3dface.perception.occlusion_mask import check_mask, check_user_mask
from d3dface.perception.working_size import MAX_FACE_SIDE

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def model(face_model: FaceModel) -> FaceModel:
    """The shipped face model, loaded once for the session (``conftest.face_model``)."""
    return face_model


@pytest.fixture(scope="module")
def detector() -> Iterator[LandmarkDetector]:
    with LandmarkDetector(max_num_faces=1) as shared:
        yield shared


@pytest.fixture(scope="module")
def render(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """A render of the model (512 px) and its true landmarks (478, 2)."""
    face = synthetic_face(model, synthetic_pattern(model), 91_000)
    points = project_surface_points(
        face.view.screen, model.faces, model.landmark_faces, model.landmark_bary
    ).numpy()
    return face.image, points


@pytest.fixture(scope="module")
def astronaut() -> Path:
    return shared_photo("astronaut.png")


@pytest.fixture(scope="module")
def obama() -> Path:
    return shared_photo("obama.jpg")


@pytest.fixture
def no_parser_cache() -> Iterator[None]:
    load_face_parser.cache_clear()
    yield
    load_face_parser.cache_clear()


def _iou(found: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    found, truth = found & region, truth & region
    return float((found & truth).sum() / (found | truth).sum())


# ---------------------------------------------------------------------- user masks
def test_user_masks_are_validated(tmp_path: Path) -> None:
    shape = (40, 60, 3)
    with pytest.raises(ValueError, match="NaN"):
        check_mask(np.full(shape[:2], np.nan), shape)
    with pytest.raises(ValueError, match="same photo at its full size"):
        check_mask(np.zeros((20, 60)), shape)
    with pytest.raises(ValueError, match=r"2-D .* pass one channel"):
        check_mask(np.zeros(shape), shape)
    with pytest.raises(ValueError, match="booleans or numbers"):
        check_mask(np.full(shape[:2], "x"), shape)
    with pytest.raises(ValueError, match="white all over"):
        check_user_mask(np.ones(shape[:2]), shape)
    white = tmp_path / "white.png"
    Image.fromarray(np.full(shape[:2], 255, np.uint8)).save(white)
    with pytest.raises(ValueError, match="hides the whole face"):
        check_user_mask(white, shape)
    half = np.zeros(shape[:2], np.float32)
    half[:, :30] = 0.5
    assert check_user_mask(half, shape).sum() == 40 * 30
    # a soft float mask (a segmentation's probabilities) hides where it is at least 0.5: its
    # small values elsewhere hid everything, and the mask was refused as "white all over"
    soft = np.full(shape[:2], 0.02, np.float32)
    soft[:, :30] = 0.9
    assert check_user_mask(soft, shape).sum() == 40 * 30
    counts = np.zeros(shape[:2], np.uint8)
    counts[:, :10] = 1
    assert check_user_mask(counts, shape).sum() == 40 * 10  # whole numbers: nonzero
    assert not check_user_mask(np.zeros(shape[:2]), shape).any()  # empty is fine
    left = np.zeros(shape[:2], np.uint8)
    left[:, :20] = 255
    encoded = io.BytesIO()
    Image.fromarray(left).save(encoded, format="PNG")
    np.testing.assert_array_equal(check_user_mask(encoded.getvalue(), shape), left > 0)
    with pytest.raises(ImageError, match="mask data is not an image"):
        check_user_mask(b"not a png", shape)
    with pytest.raises(ImageError, match="is a folder"):
        check_user_mask(tmp_path, shape)


def test_user_mask_source_reports_empty_and_refuses_bad_requests(
    model: FaceModel, detector: LandmarkDetector, render: tuple[np.ndarray, np.ndarray]
) -> None:
    image, _ = render
    empty = segment_occlusion(image, model, detector=detector, user_mask=np.zeros(image.shape[:2]))
    assert empty.source == "user" and not empty.mask.any()
    assert any("empty" in note for note in empty.notes)
    assert empty.landmark_visible.all() and empty.face_region.any()
    band = np.zeros(image.shape[:2], bool)
    band[: image.shape[0] // 2] = True
    half = segment_occlusion(image, model, landmarks=empty.landmarks, method="user", user_mask=band)
    assert half.notes == () and 0.2 < half.hidden_fraction < 0.8
    upper = half.landmarks.points[:, 1] < image.shape[0] // 2
    np.testing.assert_array_equal(half.landmark_visible, ~upper)
    with pytest.raises(ValueError, match="needs a mask"):
        segment_occlusion(image, model, landmarks=empty.landmarks, method="user")
    with pytest.raises(ValueError, match="must be 'auto' or 'user'"):
        segment_occlusion(image, model, method="model", user_mask=band)
    with pytest.raises(ValueError, match="unknown occlusion method"):
        segment_occlusion(image, model, method="magic")


# ---------------------------------------------------------------------- facexlib
class _StandInParser(torch.nn.Module):
    """Scores of a parser that calls the top half of its input 'hat' and the rest 'skin'."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        super().__init__()
        self.classes = classes
        self.inputs: list[torch.Tensor] = []

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.inputs.append(image)
        scores = torch.zeros(1, len(self.classes), 512, 512)
        scores[0, self.classes.index("skin")] = 1.0
        scores[0, self.classes.index("hat"), :256] = 2.0
        return scores, scores


def _install_facexlib(monkeypatch: pytest.MonkeyPatch, init: object) -> None:
    package = types.ModuleType("facexlib")
    parsing = types.ModuleType("facexlib.parsing")
    parsing.init_parsing_model = init  # type: ignore[attr-defined]
    package.parsing = parsing  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "facexlib", package)
    monkeypatch.setitem(sys.modules, "facexlib.parsing", parsing)


@pytest.mark.usefixtures("no_parser_cache")
def test_facexlib_glue_with_a_stand_in_parser(
    model: FaceModel,
    detector: LandmarkDetector,
    render: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    network = _StandInParser(FACEXLIB_CLASSES["bisenet"])
    calls = []

    def init_parsing_model(model_name: str, device: torch.device) -> _StandInParser:
        calls.append((model_name, str(device)))
        return network

    _install_facexlib(monkeypatch, init_parsing_model)
    image, _ = render
    found = segment_occlusion(image, model, detector=detector)  # auto picks facexlib
    assert found.source == "facexlib" and calls[0][0] == "bisenet"
    assert network.inputs[0].shape == (1, 3, 512, 512)
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    pixels = network.inputs[0][0] * std + mean  # BiSeNet's ImageNet normalisation undone
    assert float(pixels.min()) > -1e-5 and float(pixels.max()) < 1 + 1e-5
    # the parser saw a square window centred on the landmarks' box: its top half ("hat") is
    # hidden wherever the face is, its bottom half ("skin") nowhere
    middle = float(found.landmarks.bbox[1] + found.landmarks.bbox[3]) / 2
    rows = np.arange(image.shape[0])[:, None]
    assert not (found.mask & (rows > middle + 2)).any()
    upper_face = found.face_region & (rows < middle - 2)
    assert (found.mask & upper_face).sum() > 0.97 * upper_face.sum()
    assert segment_occlusion(image, model, method="facexlib", detector=detector).mask.any()
    assert len(calls) == 1  # the parser is loaded once


@pytest.mark.usefixtures("no_parser_cache")
def test_facexlib_unavailable_is_a_clear_error_and_auto_falls_back(
    model: FaceModel,
    detector: LandmarkDetector,
    render: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "facexlib", None)  # importing it raises ImportError
    with pytest.raises(FacexlibUnavailableError, match="pip install facexlib"):
        load_face_parser()
    image, _ = render
    with pytest.raises(FacexlibUnavailableError, match="method 'model'"):
        segment_occlusion(image, model, method="facexlib", detector=detector)
    found = segment_occlusion(image, model, detector=detector)
    assert found.source == "model"
    assert found.notes == (
        "found by d3dface's own colour-based segmentation (facexlib's learned face parser, an "
        "optional extra, is not installed)",
    )

    def no_weights(model_name: str, device: torch.device) -> None:
        raise OSError("network unreachable")

    _install_facexlib(monkeypatch, no_weights)
    with pytest.raises(FacexlibUnavailableError, match="weights could not be loaded"):
        load_face_parser("parsenet")
    fallback = segment_occlusion(image, model, detector=detector)
    assert fallback.source == "model"
    assert fallback.notes == (
        "found by d3dface's own colour-based segmentation: facexlib is installed but could not "
        "be used (OSError: network unreachable)",
    )
    with pytest.raises(ValueError, match="unknown facexlib parser"):
        load_face_parser("unet")


# ---------------------------------------------------------------------- the model-based default
def test_model_segmentation_finds_drawn_occluders(
    model: FaceModel, detector: LandmarkDetector, astronaut: Path
) -> None:
    photo = load_image(astronaut)
    clean = segment_occlusion(photo, model, method="model", detector=detector)
    assert clean.source == "model" and clean.hidden_fraction < 0.45  # her fringe hides some
    for kind, seed, goal in (("sunglasses", 3, 0.75), ("face_mask", 4, 0.85)):
        occluded, truth = draw_occluder_of_type(
            photo, clean.landmarks.points, kind, np.random.default_rng(seed)
        )
        found = segment_occlusion(occluded, model, method="model", detector=detector)
        region = clean.face_region & ~clean.mask
        assert _iou(found.mask, truth, region) > goal, kind
        cols, rows = np.floor(found.landmarks.points).astype(int).T
        np.testing.assert_array_equal(found.landmark_visible, ~found.mask[rows, cols])
        assert found.timings["total"] < 10.0


@pytest.fixture(scope="module")
def face_mask_render(
    model: FaceModel, detector: LandmarkDetector, render: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, OcclusionResult]:
    """The render with a face mask drawn on, the true mask, and the model segmentation's."""
    image, points = render
    occluded, truth = draw_occluder_of_type(image, points, "face_mask", np.random.default_rng(2))
    return occluded, truth, segment_occlusion(occluded, model, method="model", detector=detector)


def test_model_segmentation_on_a_render_with_a_face_mask(
    model: FaceModel,
    detector: LandmarkDetector,
    face_mask_render: tuple[np.ndarray, np.ndarray, OcclusionResult],
) -> None:
    occluded, truth, found = face_mask_render
    assert _iou(found.mask, truth, found.face_region) > 0.8
    # GrabCut draws from OpenCV's random stream: each call reseeds it, so a second call in
    # the same process, after other work, finds the same mask
    again = segment_occlusion(occluded, model, method="model", detector=detector)
    np.testing.assert_array_equal(again.mask, found.mask)
    assert not any("no colour" in note for note in found.notes)
    # a grey photo is segmented too, with a note that colour, its main cue, is missing
    grey = np.repeat(occluded.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    found_grey = segment_occlusion(grey, model, method="model", detector=detector)
    assert any("no colour" in note for note in found_grey.notes)


def test_a_tight_close_up_keeps_its_visible_eyes_visible(
    model: FaceModel, detector: LandmarkDetector
) -> None:
    # cropped from brow to chin and cheek to cheek: a third of the face's footprint lay in the
    # crop's grey padding beyond the photo, and 75% of the visible pixels were marked hidden
    photo = load_image(EXAMPLES / "obama_face_mask.jpg")
    truth = load_image(EXAMPLES / "obama_face_mask_mask.png")[..., 0] > 127
    points = detector.detect(photo)[0].points
    x0, x1 = int(points[234, 0]), int(points[454, 0])
    y0, y1 = int(points[[105, 334, 66, 296], 1].min()), int(points[152, 1])
    size = (round((x1 - x0) * 700 / (y1 - y0)), 700)
    close_up = cv2.resize(photo[y0:y1, x0:x1], size, interpolation=cv2.INTER_CUBIC)
    hidden = cv2.resize(truth[y0:y1, x0:x1].astype(np.uint8), size, cv2.INTER_NEAREST) > 0
    found = segment_occlusion(close_up, model, method="model", detector=detector)
    assert (found.mask & ~hidden).sum() / (~hidden).sum() < 0.2
    assert (found.mask & hidden).sum() / hidden.sum() > 0.8


RIGHT_EYE, LEFT_EYE = [33, 133, 159, 145], [263, 362, 386, 374]  # corners, lids
RIGHT_BROW = [70, 105]


def test_a_skin_coloured_patch_over_an_eye_is_found(
    model: FaceModel, detector: LandmarkDetector, obama: Path
) -> None:
    # an eye and brow covered by a flat patch of the face's own skin colour (a hand, plainly):
    # colour alone takes it for skin (0% of it was found); the eye's missing contrast gives it
    # away
    photo = load_image(obama)
    points = detector.detect(photo)[0].points
    x, y = np.round(points[50]).astype(int)  # the cheek
    skin = np.median(photo[y - 5 : y + 5, x - 5 : x + 5].reshape(-1, 3), axis=0)
    centre = np.round(points[RIGHT_EYE + RIGHT_BROW].mean(axis=0)).astype(int)
    half = int(0.13 * np.ptp(points, axis=0).max())
    patch = np.zeros(photo.shape[:2], np.uint8)
    cv2.ellipse(patch, tuple(centre.tolist()), (int(1.3 * half), half), 0, 0, 360, 1, -1)
    covered, patched = patch > 0, photo.copy()
    patched[covered] = skin
    found = segment_occlusion(patched, model, method="model", detector=detector)
    region = found.face_region
    assert (found.mask & covered & region).sum() / (covered & region).sum() > 0.8
    assert (found.mask & ~covered & region).sum() / (~covered & region).sum() < 0.15
    assert not found.landmark_visible[RIGHT_EYE].any()
    assert found.landmark_visible[LEFT_EYE].all()


def test_a_flat_photo_keeps_its_eyes_brows_and_lips_visible(
    model: FaceModel, detector: LandmarkDetector, astronaut: Path
) -> None:
    # at a third of its contrast every feature differs less from the skin around it; judged
    # by a fixed contrast alone, her brows looked hidden and two thirds of the face was marked
    # hidden
    photo = load_image(astronaut).astype(np.float64)
    flat = np.round((photo - photo.mean()) * 0.3 + photo.mean()).astype(np.uint8)
    found = segment_occlusion(flat, model, method="model", detector=detector)
    assert found.hidden_fraction < 0.05
    assert found.landmark_visible[RIGHT_EYE + LEFT_EYE + RIGHT_BROW].all()


def test_a_large_photo_is_segmented_shrunk_and_its_mask_given_at_its_size(
    model: FaceModel,
    detector: LandmarkDetector,
    face_mask_render: tuple[np.ndarray, np.ndarray, OcclusionResult],
) -> None:
    occluded, truth, native = face_mask_render
    side = 3 * occluded.shape[0]  # the face becomes larger than MAX_FACE_SIDE
    assert 3 * np.ptp(native.landmarks.points, axis=0).max() > MAX_FACE_SIDE
    large = cv2.resize(occluded, (side, side), interpolation=cv2.INTER_CUBIC)
    found = segment_occlusion(large, model, method="model", detector=detector)
    assert found.mask.shape == found.face_region.shape == (side, side)
    large_truth = cv2.resize(truth.astype(np.uint8), (side, side)) > 0
    assert _iou(found.mask, large_truth, found.face_region) > 0.8
    small = cv2.resize(
        found.mask.astype(np.float32), occluded.shape[1::-1], interpolation=cv2.INTER_AREA
    )
    back = small >= 0.5
    assert _iou(back, native.mask, native.face_region) > 0.9


# ---------------------------------------------------------------------- drawn occluders
def test_occluders_are_seeded_and_cover_the_face(render: tuple[np.ndarray, np.ndarray]) -> None:
    image, points = render
    for kind in OCCLUDER_KINDS:
        first, mask = draw_occluder_of_type(image, points, kind, np.random.default_rng(7))
        again, mask_again = draw_occluder_of_type(image, points, kind, np.random.default_rng(7))
        np.testing.assert_array_equal(first, again)
        np.testing.assert_array_equal(mask, mask_again)
        assert first.shape == image.shape and mask.dtype == bool
        assert 0.005 < mask.mean() < 0.6, kind
        assert (first[mask] != image[mask]).any(axis=1).mean() > 0.5, kind  # painted there
        near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert (first[~near] == image[~near]).all(), kind  # untouched beyond its soft edge
    with pytest.raises(ValueError, match="unknown occluder kind"):
        draw_occluder_of_type(image, points, "hat", np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(478, 2\)"):
        draw_occluder_of_type(image, points[:68], "glasses", np.random.default_rng(0))


# ---------------------------------------------------------------------- CLI and benchmark
def test_mask_command_writes_mask_and_overlay(
    astronaut: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mask", str(astronaut), "--method", "model", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "wrote mask.png, overlay.png, mask.json" in printed
    summary = json.loads((tmp_path / "mask.json").read_text())
    assert summary["files"] == ["mask.png", "overlay.png", "mask.json"]
    assert summary["image"] == str(astronaut) and summary["face"]["faces_found"] == 1
    assert summary["method"] == summary["mask_source"] == "model"
    assert f"hides {100 * summary['hidden_face_fraction']:.1f}% of the face" in printed
    assert 0 < summary["hidden_landmarks"] < summary["landmark_count"] == 478
    with Image.open(astronaut) as photo, Image.open(tmp_path / "mask.png") as mask:
        assert mask.size == photo.size and mask.mode == "L"
        values = np.unique(np.asarray(mask))
    assert set(values.tolist()) <= {0, 255} and 255 in values  # her fringe hides her forehead
    with Image.open(tmp_path / "overlay.png") as overlay:
        assert overlay.size == photo.size and overlay.mode == "RGB"
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    assert main(["mask", str(text), "--out", str(tmp_path / "x")]) == 2
    assert "is not an image file" in capsys.readouterr().err


def test_a_mask_folder_is_known_as_a_result_and_its_mask_given_to_reconstruct(
    astronaut: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the mask command wrote no summary, so a folder run took its mask.png and overlay.png
    # for photos, and its folder for a folder of photos
    photos, masked = tmp_path / "photos", tmp_path / "photos" / "masked"
    photos.mkdir()
    shutil.copy2(astronaut, photos / "astronaut.png")
    args = ["mask", str(photos / "astronaut.png"), "--method", "model", "--out", str(masked)]
    assert main(args) == 0
    inputs = list_inputs(photos, None, tmp_path / "out")
    assert [item.image.name for item in inputs.items] == ["astronaut.png"]
    assert inputs.ignored == []  # masked/ is a result, not a folder of photos left unread
    with pytest.raises(ValueError, match="holds no photos"):
        list_inputs(masked, None, tmp_path / "out")
    for path in masked.iterdir():  # as `mask ... --out photos` leaves them
        shutil.copy2(path, photos / path.name)
    inputs = list_inputs(photos, None, tmp_path / "out")
    assert [item.image.name for item in inputs.items] == ["astronaut.png"]
    assert inputs.ignored == [
        "mask.png, overlay.png, mask.json: written by an earlier run (listed in its mask.json)"
    ]
    # its mask.png is a mask file for reconstruct
    out = tmp_path / "out"
    args = ["reconstruct", str(photos / "astronaut.png"), "--mask", str(masked / "mask.png")]
    args += ["-n", "2", "--iterations", "2", "--fit-iterations", "10", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["mask_source"] == "user"
    with Image.open(masked / "mask.png") as given, Image.open(out / "mask.png") as used:
        np.testing.assert_array_equal(np.asarray(used) > 0, np.asarray(given) > 0)


def test_mask_command_facexlib_unavailable_is_one_line(
    astronaut: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_parser_cache: None,
) -> None:
    monkeypatch.setitem(sys.modules, "facexlib", None)
    args = ["mask", str(astronaut), "--method", "facexlib", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: facexlib's face parser is not available") and "\n" not in err


def test_occlusion_benchmark_quick(tmp_path: Path) -> None:
    assert bench_main(["occlusion", "--quick", "--quiet", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "occlusion.json").read_text())
    summary = results["summary"]
    assert set(summary["per_kind"]) == set(OCCLUDER_KINDS)
    assert summary["mean_iou_non_skin"] is not None and summary["mean_iou_non_skin"] > 0.6
    assert all(r["kind"] in OCCLUDER_KINDS for r in results["records"])
    assert "| sunglasses |" in (tmp_path / "occlusion.md").read_text()
