"""``python -m d3dface fit`` on a real photo, its error exits, and the fitting benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
from PIL import Image
from shared_photos import shared_photo

from d3dface.bench.__main__ import main as bench_main
from d3dface.cli import main
from d3dface.diversity import DiversitySettings
from d3dface.facemodel.model import FaceModel
from d3dface.fitting import DEFAULT_ITERATIONS as DEFAULT_FIT_ITERATIONS
from d3dface.imageio import load_image
from d3dface.perception.landmarks import detect_face
from d3dface.perception.working_size import MAX_FACE_SIDE

ROOT = Path(__file__).resolve().parents[1]
FIT_KEYS = {
    "landmark_error_px",
    "landmark_error_median_px",
    "visible_landmarks",
    "visible_vertex_fraction",
    "vertex_classes",
    "timings_s",
    "files",
}


@pytest.fixture(scope="module")
def obama() -> Path:
    return shared_photo("obama.jpg")


def _mouth_mask(photo: Path, out: Path) -> Path:
    """A white ellipse over the mouth of the photo's face, saved as a PNG mask."""
    image = load_image(photo)
    mouth = detect_face(image).points[[61, 291, 0, 17]]  # mouth corners, lip middles
    centre = np.round(mouth.mean(axis=0)).astype(int)
    axes = np.round([0.8 * np.ptp(mouth[:, 0]), 1.3 * np.ptp(mouth[:, 1])]).astype(int)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.ellipse(mask, tuple(centre.tolist()), tuple(axes.tolist()), 0, 0, 360, 255, -1)
    Image.fromarray(mask).save(out)
    return out


def test_fit_writes_mesh_overlay_and_numbers(obama: Path, tmp_path: Path) -> None:
    mask = _mouth_mask(obama, tmp_path / "mask.png")
    out = tmp_path / "fit"
    # --model: the pipeline folder, as for reconstruct; fit uses the face model in it
    pipeline = str(ROOT / "checkpoints")
    args = ["--mask", str(mask), "--iterations", "20", "--model", pipeline, "--out", str(out)]
    assert main(["fit", str(obama), *args]) == 0
    for name in ("fit.ply", "fit.glb", "overlay.png", "fit.json"):
        assert (out / name).is_file(), name
    model = FaceModel.from_pretrained(ROOT / "checkpoints" / "face_model")
    mesh = trimesh.load(out / "fit.ply", process=False)
    assert len(mesh.vertices) == model.n_vertices
    scene = trimesh.load(out / "fit.glb", process=False)
    assert sum(len(g.vertices) for g in scene.geometry.values()) == model.n_vertices
    summary = json.loads((out / "fit.json").read_text())
    assert set(summary) >= FIT_KEYS
    assert summary["vertex_classes"]["occluded"] > 0
    assert 0.0 < summary["visible_vertex_fraction"] < 1.0
    assert summary["landmark_error_px"] < 10.0
    with Image.open(out / "overlay.png") as overlay, Image.open(obama) as photo:
        assert overlay.size == photo.size


def test_fit_works_on_a_large_photo_at_the_size_its_face_needs(obama: Path, tmp_path: Path) -> None:
    with Image.open(obama) as photo:
        size = (photo.width * 5 // 2, photo.height * 5 // 2)  # the face becomes about 750 px
        photo.resize(size, Image.Resampling.BICUBIC).save(tmp_path / "large.png")
    out = tmp_path / "fit"
    assert main(["fit", str(tmp_path / "large.png"), "--iterations", "20", "--out", str(out)]) == 0
    summary = json.loads((out / "fit.json").read_text())
    assert summary["photo_size_px"] == list(size)
    working = summary["working_size_px"]
    assert working[0] < size[0] and working[0] / size[0] == pytest.approx(
        working[1] / size[1], abs=1e-3
    )
    assert summary["landmark_error_px"] < 0.02 * MAX_FACE_SIDE  # pixels of the working size
    with Image.open(out / "overlay.png") as overlay:
        assert list(overlay.size) == working


def test_fit_bad_inputs_exit_2_with_one_clear_line(
    obama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    assert main(["fit", str(text), "--out", str(tmp_path / "a")]) == 2
    assert "is not an image file" in capsys.readouterr().err
    # no bound: 100000 iterations ran for hours (the diversity stage's stop at 10000)
    assert main(["fit", str(obama), "--iterations", "100000", "--out", str(tmp_path / "a")]) == 2
    assert "iterations must be a whole number from 0 to 10000" in capsys.readouterr().err
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(small)
    assert main(["fit", str(obama), "--mask", str(small), "--out", str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err
    assert "mask is 30x40 pixels but the photo is" in error
    assert error.count("\n") == 1
    # a mask that hides nearly all of the face said so, but not what to do
    with Image.open(obama) as photo:
        nearly_white = Image.new("L", photo.size, 255)
    nearly_white.paste(0, (0, 0, 8, 8))
    nearly_white.save(tmp_path / "nearly_white.png")
    args = ["--mask", str(tmp_path / "nearly_white.png"), "--out", str(tmp_path / "c")]
    assert main(["fit", str(obama), *args]) == 2
    error = capsys.readouterr().err
    assert "landmarks are visible" in error and "paint only what covers the face" in error
    # fit photos/overlay.png --out photos/ replaced the photo with its overlay
    (tmp_path / "overlay.png").write_bytes(obama.read_bytes())
    assert main(["fit", str(tmp_path / "overlay.png"), "--out", str(tmp_path)]) == 2
    assert "photo '" in capsys.readouterr().err
    assert (tmp_path / "overlay.png").read_bytes() == obama.read_bytes()
    assert main(["mask", str(tmp_path / "overlay.png"), "--out", str(tmp_path)]) == 2
    assert "would be replaced by the overlay.png" in capsys.readouterr().err


def test_quick_fitting_benchmark_writes_both_files(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert (
        bench_main(["fitting", "--quick", "--iterations", "10", "--quiet", "--out", str(out)]) == 0
    )
    results = json.loads((out / "fitting.json").read_text())
    assert results["faces"] == 2
    assert set(results["sets"]) == {"global-model faces", "faces with local detail"}
    for face_set in results["sets"].values():
        assert len(face_set["records"]) == 2
        assert "global+local + photometric" in face_set["summary"]
    assert (out / "fitting.md").read_text().count("| variant |") == 2


def test_reconstruct_help_states_the_defaults_the_pipeline_uses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["reconstruct", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"stage-1 fitting iterations (default: {DEFAULT_FIT_ITERATIONS})" in text
    assert f"diversity iterations (default: {DiversitySettings().iterations})" in text


def test_fit_help_states_the_default_iterations(capsys: pytest.CaptureFixture[str]) -> None:
    # it said "default: FitSettings' default", a class the command line never shows
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"non-rigid iterations (default: {DEFAULT_FIT_ITERATIONS})" in text


def test_readme_gives_fit_mask_and_reconstruct_folders_of_their_own() -> None:
    # README ran all three with --out out/: fit and mask then replaced reconstruct's fit.ply,
    # overlay.png and mask.png (the mask it had used) while its metrics.json still listed them
    outs: dict[str, set[str]] = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        words = line.split()
        if words[:3] == ["python", "-m", "d3dface"] and "--out" in words:
            outs.setdefault(words[3], set()).add(words[words.index("--out") + 1])
    fit, mask, reconstruct = outs["fit"], outs["mask"], outs["reconstruct"]
    assert not fit & mask and not fit & reconstruct and not mask & reconstruct
