"""The whole pipeline on a real photo, its files, and ``python -m d3dface reconstruct``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from shared_photos import shared_photo

import d3dface
from d3dface import Diverse3DFace
from d3dface.batch import list_inputs
from d3dface.bench.occluders import draw_plain_face_mask
from d3dface.cli import main
from d3dface.facemodel.model import FaceModel
from d3dface.fitting import FitSettings
from d3dface.hub import CHECKPOINTS_DIR, WeightsError
from d3dface.imageio import load_image
from d3dface.perception.landmarks import detect_face
from d3dface.perception.working_size import MAX_FACE_SIDE
from d3dface.pipeline import FaceResult, run_settings
from d3dface.vae.model import MeshVAE

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "obama_face_mask.jpg"
"""An example photo of the project (always there), with its mask beside it."""
FAST = {"iterations": 8, "fit_iterations": 30}
QUICK_CLI = ["-n", "2", "--iterations", "2", "--fit-iterations", "10", "--quiet"]
"""``reconstruct`` options of a quick run that still makes two samples."""


@pytest.fixture(scope="module")
def masked_photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """obama.jpg with a blue face mask drawn from below the nose to the chin, and its mask."""
    source = shared_photo("obama.jpg")
    photo = load_image(source)
    photo, mask = draw_plain_face_mask(photo, detect_face(photo).points, chin_margin_px=10)
    folder = tmp_path_factory.mktemp("masked")
    Image.fromarray(photo).save(folder / "obama_mask.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "obama_mask.mask.png")
    return folder / "obama_mask.png", folder / "obama_mask.mask.png"


@pytest.fixture(scope="module")
def pipeline() -> Diverse3DFace:
    return Diverse3DFace.from_pretrained()


def test_pipeline_reconstructs_a_masked_photo(
    pipeline: Diverse3DFace, masked_photo: tuple[Path, Path], tmp_path: Path
) -> None:
    photo, mask = masked_photo
    stages: list[str] = []
    result = pipeline(
        photo, mask=mask, n=3, seed=1, progress=lambda f, text: stages.append(text), **FAST
    )
    n_vertices = pipeline.face_model.n_vertices
    assert result.samples.shape == (3, n_vertices, 3)
    assert result.mask_source == "user" and result.mask.shape == result.photo.shape[:2]
    assert result.spread_mm.shape == (n_vertices,)
    assert set(result.metrics) == {"asd_v_mm", "asd_o_mm", "asd_ratio"}
    assert result.metrics["asd_o_mm"] > result.metrics["asd_v_mm"]
    assert set(result.timings) == {"detect", "mask", "fit", "diversity", "total"}
    assert stages[0] == "detecting the face" and stages[-1] == "done"
    # the spread is larger where the face was hidden
    spread = result.spread_mm
    assert float(spread[result.target.occluded].mean()) > 2 * float(
        spread[result.target.visible].mean()
    )
    between = result.interpolate(0, 2, 0.5)
    assert between.shape == (n_vertices, 3)
    with pytest.raises(ValueError, match=r"sample 5 does not exist; there are 3 \(0 to 2\)"):
        result.interpolate(0, 5, 0.5)
    # wrong types are named, not an IndexError or a TypeError from inside
    with pytest.raises(ValueError, match=r"whole number, got 0\.0"):
        result.interpolate(0.0, 1, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"a number in \[0, 1\], got '0\.5'"):
        result.interpolate(0, 1, "0.5")  # type: ignore[arg-type]
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(ValueError, match=r"out_dir '.*a_file' is a file; give a folder"):
        result.save(tmp_path / "a_file")
    assert (tmp_path / "a_file").read_text() == "mine"

    paths = result.save(tmp_path, formats=("glb", "obj"))
    names = {path.name for path in paths}
    assert {"sample_00.glb", "sample_02.obj", "fit.ply", "spread.glb", "mask.png"} <= names
    assert {"overlay.png", "grid.png", "spread.png", "metrics.json"} <= names
    mesh = trimesh.load(tmp_path / "sample_01.glb", force="mesh")
    assert len(mesh.vertices) == n_vertices
    assert np.allclose(mesh.vertices, result.samples[1].numpy(), atol=1e-6)
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["metrics"]["asd_ratio"] == pytest.approx(result.metrics["asd_ratio"], 1e-3)
    assert summary["settings"]["n_samples"] == 3
    assert summary["fit_iterations"] == result.fit.settings.iterations == FAST["fit_iterations"]
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.ndim == 3 and grid.std() > 10  # renders, not a blank page
    # no formats named: the default GLB and PLY
    default = {path.name for path in result.save(tmp_path / "default", formats=None)}
    assert {"sample_00.glb", "sample_00.ply"} <= default and "sample_00.obj" not in default
    # a broken result (NaN, e.g. from damaged weights) is refused before any file is written
    broken = dataclasses.replace(result, samples=result.samples.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="samples hold NaN"):
        broken.save(tmp_path / "broken")
    assert not (tmp_path / "broken").exists()

    again = pipeline(photo, mask=mask, n=3, seed=1, **FAST)
    assert torch.equal(again.samples, result.samples)  # deterministic on CPU

    # a smaller result written into the same folder replaces the earlier one whole
    (tmp_path / "notes.txt").write_text("the user's own file")
    fewer = pipeline(photo, mask=mask, n=2, seed=1, **FAST)
    fewer.save(tmp_path, formats=("ply",))
    samples = sorted(path.name for path in tmp_path.glob("sample_*"))
    assert samples == ["sample_00.ply", "sample_01.ply"]
    assert (tmp_path / "notes.txt").read_text() == "the user's own file"
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["n_samples"] == 2


def test_a_large_photo_is_worked_on_at_the_size_its_face_needs(
    pipeline: Diverse3DFace, masked_photo: tuple[Path, Path], tmp_path: Path
) -> None:
    photo_path, mask_path = masked_photo
    photo = Image.open(photo_path)
    size = (photo.width * 5 // 2, photo.height * 5 // 2)  # the face becomes about 750 px
    big = np.array(photo.resize(size, Image.Resampling.BICUBIC))
    big_mask = np.array(Image.open(mask_path).convert("L").resize(size)) > 127

    result = pipeline(big, mask=big_mask, n=2, seed=1, **FAST)

    assert result.photo_size == big.shape[:2]
    face = detect_face(result.photo).bbox
    assert max(face[2] - face[0], face[3] - face[1]) == pytest.approx(MAX_FACE_SIDE, rel=0.03)
    assert result.mask.shape == result.photo.shape[:2]
    result.save(tmp_path, formats=("ply",))
    written = np.array(Image.open(tmp_path / "mask.png")) > 127
    assert written.shape == big_mask.shape
    assert (written & big_mask).sum() / (written | big_mask).sum() > 0.98
    assert Image.open(tmp_path / "overlay.png").size == result.photo.shape[1::-1]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["photo_size_px"] == list(size)
    assert summary["working_size_px"] == list(result.photo.shape[1::-1])


def test_pipeline_refuses_a_mask_of_another_size(
    pipeline: Diverse3DFace, masked_photo: tuple[Path, Path]
) -> None:
    photo, _ = masked_photo
    with pytest.raises(ValueError, match="same photo at its full size"):
        pipeline(photo, mask=np.zeros((10, 10), bool), n=2, **FAST)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        pytest.param(
            "cuda",
            "no CUDA GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),
        ),
        ("banana", "not a device name"),
        ("meta", "not supported"),
    ],
)
def test_an_unusable_device_is_refused_by_name(device: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Diverse3DFace.from_pretrained(device=device)


def test_every_tensor_follows_the_model_device(
    pipeline: Diverse3DFace, masked_photo: tuple[Path, Path]
) -> None:
    """The GPU path's check on a CPU machine. With torch's default device set to "meta", a
    tensor the fit or the diversity stage made without naming the model's device would be a
    meta tensor, and the first operation mixing it with the model's tensors would fail."""
    photo, mask = masked_photo
    with torch.device("meta"):
        result = pipeline(photo, mask=mask, n=2, seed=0, iterations=3, fit_iterations=5)
    assert result.samples.device.type == "cpu"
    assert bool(torch.isfinite(result.samples).all())


@pytest.fixture(scope="module")
def example_run(pipeline: Diverse3DFace) -> tuple[dict[str, Any], FaceResult]:
    """A quick run on :data:`EXAMPLE` with its mask: the call's arguments and its result."""
    mask = EXAMPLE.with_name(f"{EXAMPLE.stem}_mask.png")
    call = {"mask": mask, "n": 2, "seed": 0, "iterations": 5, "fit_iterations": 20}
    return call, pipeline(EXAMPLE, **call)


def test_torch_settings_around_a_call_change_nothing(
    pipeline: Diverse3DFace, example_run: tuple[dict[str, Any], FaceResult]
) -> None:
    # inside torch.no_grad() / inference_mode() the fit failed ("element 0 of tensors does
    # not require grad"); after set_default_dtype(float64), loading and the call failed
    # ("expected m1 and m2 to have the same dtype")
    call, plain = example_run
    with torch.no_grad():
        assert torch.equal(pipeline(EXAMPLE, **call).samples, plain.samples)
        assert not torch.is_grad_enabled()  # the caller's setting, given back
    with torch.inference_mode():
        assert torch.equal(pipeline(EXAMPLE, **call).samples, plain.samples)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        result = Diverse3DFace.from_pretrained()(EXAMPLE, **call)
        assert torch.get_default_dtype() == torch.float64  # the caller's, given back
    finally:
        torch.set_default_dtype(previous)
    assert result.samples.dtype == torch.float32
    assert torch.equal(result.samples, plain.samples)
    # the pipeline built by hand from models loaded under float64 (they held float64 weights)
    torch.set_default_dtype(torch.float64)
    try:
        face_model = FaceModel.from_pretrained(CHECKPOINTS_DIR / "face_model")
        vae = MeshVAE.from_pretrained(CHECKPOINTS_DIR / "mesh_vae_lite")
    finally:
        torch.set_default_dtype(previous)
    tensors = (*vae.parameters(), *vae.buffers(), *face_model.buffers())
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32}
    by_hand = Diverse3DFace(face_model, vae)(EXAMPLE, **call)
    assert torch.equal(by_hand.samples, plain.samples)


def test_a_result_shows_itself_in_one_line(
    example_run: tuple[dict[str, Any], FaceResult],
) -> None:
    # a notebook showing `result` printed every array and tensor: about 48,000 characters
    shown = repr(example_run[1])
    assert len(shown) < 400 and "\n" not in shown
    assert shown.startswith("FaceResult(samples=(2, 5042, 3) metres, face='the largest of 1")
    assert "mask_source='user'" in shown and "'asd_ratio'" in shown


def test_a_result_saved_under_the_home_folder_lands_there(
    example_run: tuple[dict[str, Any], FaceResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # save("~/faces") wrote into a folder named "~" in the working folder
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    paths = example_run[1].save("~/faces", formats="ply")
    assert (tmp_path / "home" / "faces" / "sample_01.ply") in paths
    assert (tmp_path / "home" / "faces" / "metrics.json").is_file()
    assert not (tmp_path / "~").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pipeline_on_the_gpu_agrees_with_the_cpu(
    pipeline: Diverse3DFace, masked_photo: tuple[Path, Path]
) -> None:
    photo, mask = masked_photo
    on_cpu = pipeline(photo, mask=mask, n=3, seed=1, **FAST)
    on_gpu = Diverse3DFace.from_pretrained(device="cuda")(photo, mask=mask, n=3, seed=1, **FAST)
    assert on_gpu.samples.device.type == "cpu"  # results come back on the CPU
    assert on_gpu.fit.vertices.device.type == "cpu"
    # the same optimisation in another order of float sums: close, not bit-identical
    assert float((on_gpu.fit.vertices - on_cpu.fit.vertices).abs().max()) < 1e-3
    assert on_gpu.metrics["asd_ratio"] > 2.0
    assert on_gpu.interpolate(0, 2, 0.5).device.type == "cpu"


def test_pipeline_directory_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"has no config\.json"):
        Diverse3DFace.from_pretrained(tmp_path)
    config = {"format_version": 1, "kind": "d3dface.pipeline", "face_model": "x"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="key 'mesh_vae' must be the name of the Mesh-VAE's"):
        Diverse3DFace.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "mesh_vae": "y"}))
    with pytest.raises(WeightsError, match="face_model folder 'x'"):
        Diverse3DFace.from_pretrained(tmp_path)


def test_batch_folders_never_share_a_name(tmp_path: Path) -> None:
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for name in ("a.jpg", "a.png", "b.jpg", ".hidden.png"):
        (photos / name).write_bytes(b"")
    (masks / "a.png").write_bytes(b"")
    items = list_inputs(photos, masks, tmp_path / "out").items
    assert [(item.image.name, item.out_dir.name) for item in items] == [
        ("a.jpg", "a_jpg"),
        ("a.png", "a_png"),
        ("b.jpg", "b"),
    ]
    assert [item.mask for item in items] == [masks / "a.png", masks / "a.png", None]
    single = list_inputs(photos / "b.jpg", None, tmp_path / "out").items
    assert [item.out_dir for item in single] == [tmp_path / "out"]


def test_batch_photos_whose_folders_would_clash_are_refused(tmp_path: Path) -> None:
    # a.jpg went into a_jpg/ (a.png shares its stem), and a_jpg.png then replaced it there
    for name in ("a.jpg", "a.png", "a_jpg.png"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"a\.jpg and a_jpg\.png would both write into .*a_jpg"):
        list_inputs(tmp_path, None, tmp_path / "out")


def test_batch_masks_may_lie_among_the_photos(tmp_path: Path) -> None:
    for name in ("a.jpg", "a_mask.png", "b.png", "c.jpg", "c_mask.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    # the folder as its own mask folder: a_mask.png is a.jpg's mask, b.png is never its own
    given = list_inputs(tmp_path, tmp_path, tmp_path / "out")
    assert [(item.image.name, item.mask) for item in given.items] == [
        ("a.jpg", tmp_path / "a_mask.png"),
        ("b.png", None),
        ("c.jpg", tmp_path / "c_mask.png"),
    ]
    assert [note.split(":")[0] for note in given.ignored] == ["notes.txt"]
    # without --mask, files named as a photo's mask are left alone and the note says why
    alone = list_inputs(tmp_path, None, tmp_path / "out")
    assert [item.image.name for item in alone.items] == ["a.jpg", "b.png", "c.jpg"]
    assert all(item.mask is None for item in alone.items)
    notes = dict(note.split(": ", 1) for note in alone.ignored)
    assert set(notes) == {"notes.txt", "a_mask.png", "c_mask.png"}
    assert "mask of a.jpg" in notes["a_mask.png"] and "--mask" in notes["a_mask.png"]
    assert "not a photo" in notes["notes.txt"]


def test_batch_photos_sharing_a_stem_are_never_taken_for_masks(tmp_path: Path) -> None:
    for name in ("a.jpg", "a.png", "b.jpg", "b_mask_mask.png"):
        (tmp_path / name).write_bytes(b"")
    # the folder as its own mask folder: a.png is a photo, not a.jpg's mask (nor the reverse)
    given = list_inputs(tmp_path, tmp_path, tmp_path / "out")
    assert [(item.image.name, item.mask, item.out_dir.name) for item in given.items] == [
        ("a.jpg", None, "a_jpg"),
        ("a.png", None, "a_png"),
        ("b.jpg", None, "b"),
        ("b_mask_mask.png", None, "b_mask_mask"),
    ]
    # a_jpg_mask.png is a.jpg's alone; a_mask.png is the mask of both
    (tmp_path / "a_jpg_mask.png").write_bytes(b"")
    (tmp_path / "a_mask.png").write_bytes(b"")
    masks = {item.image.name: item.mask for item in list_inputs(tmp_path, tmp_path, tmp_path).items}
    assert masks == {
        "a.jpg": tmp_path / "a_jpg_mask.png",
        "a.png": tmp_path / "a_mask.png",
        "b.jpg": None,
        "b_mask_mask.png": None,
    }


def test_batch_masks_are_found_whatever_the_case_of_their_suffix(tmp_path: Path) -> None:
    # a camera's IMG_1.JPG with IMG_1_mask.PNG beside it: the mask was not found, and the
    # note asked for the --mask folder that had been given
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for name in ("IMG_1.JPG", "IMG_1_mask.PNG", "IMG_2.jpg"):
        (photos / name).write_bytes(b"")
    (masks / "IMG_2.Png").write_bytes(b"")
    own = list_inputs(photos, photos, tmp_path / "out")
    assert [(item.image.name, item.mask) for item in own.items] == [
        ("IMG_1.JPG", photos / "IMG_1_mask.PNG"),
        ("IMG_2.jpg", None),
    ]
    assert own.ignored == []
    other = list_inputs(photos, masks, tmp_path / "out")
    assert [item.mask for item in other.items] == [None, masks / "IMG_2.Png"]


def test_inputs_that_a_result_would_replace_are_refused(tmp_path: Path) -> None:
    # reconstruct photos/overlay.png --out photos/ replaced the photo with its own overlay,
    # and a mask mask.png in --out with the result's copy of it
    (tmp_path / "overlay.png").write_bytes(b"a photo")
    (tmp_path / "face.jpg").write_bytes(b"a photo")
    (tmp_path / "mask.png").write_bytes(b"a mask")
    with pytest.raises(ValueError, match=r"the photo .*overlay\.png' would be replaced by the "):
        list_inputs(tmp_path / "overlay.png", None, tmp_path)
    with pytest.raises(
        ValueError, match=r"the mask .*mask\.png' would be replaced .*another --out"
    ):
        list_inputs(tmp_path / "face.jpg", tmp_path / "mask.png", tmp_path)
    assert list_inputs(tmp_path / "face.jpg", tmp_path / "mask.png", tmp_path / "out").items


def test_a_photos_folder_skips_earlier_results_and_names_its_subfolders(tmp_path: Path) -> None:
    # a single run with --out the photos folder left grid.png, overlay.png, ... there, which
    # the next folder run took for photos; photos in subfolders were dropped without a word
    for name in ("a.jpg", "grid.png", "overlay.png", "mask.png", "spread.png", "fit.ply"):
        (tmp_path / name).write_bytes(b"picture")
    listed = ["sample_00.glb", "fit.ply", "mask.png", "overlay.png", "grid.png", "spread.png"]
    listed += ["metrics.json", "latents.safetensors"]  # sample_00.glb is gone, the rest here
    (tmp_path / "latents.safetensors").write_bytes(b"codes")
    (tmp_path / "metrics.json").write_text(json.dumps({"files": listed}))
    (tmp_path / "holiday").mkdir()
    (tmp_path / "holiday" / "b.jpg").write_bytes(b"picture")
    (tmp_path / "a").mkdir()  # a folder run's result folder
    (tmp_path / "a" / "grid.png").write_bytes(b"picture")
    (tmp_path / "a" / "metrics.json").write_text(json.dumps({"files": ["grid.png"]}))
    inputs = list_inputs(tmp_path, None, tmp_path / "out")
    assert [item.image.name for item in inputs.items] == ["a.jpg"]
    # one line for the earlier result, its meshes and summary too (each was "not a photo")
    assert inputs.ignored[0] == (
        "fit.ply, mask.png, overlay.png, grid.png, spread.png, metrics.json and 1 more: "
        "written by an earlier run (listed in its metrics.json)"
    )
    assert not any("not a photo" in note for note in inputs.ignored)
    holiday = [note for note in inputs.ignored if note.startswith("holiday/")]
    assert len(holiday) == 1 and str(tmp_path / "holiday") in holiday[0]
    assert not any(note.startswith("a/") for note in inputs.ignored)
    # a summary that is not what a run writes names nothing
    (tmp_path / "metrics.json").write_text('{"files": 3}')
    assert len(list_inputs(tmp_path, None, tmp_path / "out").items) == 5
    only_folders = tmp_path / "only_folders"
    (only_folders / "2024").mkdir(parents=True)
    (only_folders / "2024" / "c.jpg").write_bytes(b"picture")
    with pytest.raises(ValueError, match=r"holds no photos .*its folders \(2024\) are not read"):
        list_inputs(only_folders, None, tmp_path / "out")
    # a result folder given as the photos: why its pictures are not photos, and what to give
    with pytest.raises(
        ValueError,
        match=r"holds no photos .*its pictures \(grid\.png\) are an "
        r"earlier run's results, listed in its metrics\.json: give the photo",
    ):
        list_inputs(tmp_path / "a", None, tmp_path / "out")


def _folder_of(folder: Path, files: dict[str, Path]) -> Path:
    """``folder``, made, holding a copy of each of ``files`` under the name it is given."""
    folder.mkdir()
    for name, source in files.items():
        shutil.copy2(source, folder / name)
    return folder


def test_reconstruct_cli_skips_a_bad_file_and_runs_the_rest(
    masked_photo: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, mask = masked_photo
    photos = _folder_of(tmp_path / "photos", {"obama_mask.png": photo})
    masks = _folder_of(tmp_path / "masks", {"obama_mask.png": mask})
    (photos / "broken.jpg").write_text("not a photo")
    (photos / "notes.txt").write_text("not a photo either, by its name")
    out = tmp_path / "out"
    args = ["reconstruct", str(photos), "--mask", str(masks), *QUICK_CLI, "--out", str(out)]
    assert main(args) == 1  # one file failed
    captured = capsys.readouterr()
    # the bad file is reported once, on stderr, and counted at the end
    lines = (captured.out + captured.err).splitlines()
    assert len([line for line in lines if "broken.jpg" in line]) == 1
    assert "error: " in captured.err and "not an image" in captured.err
    assert "error: 1 of 2 photos failed" in captured.err
    assert "ignored notes.txt: not a photo" in captured.err
    assert "ASD-V" in captured.out
    folder = out / "obama_mask"
    assert (folder / "sample_01.glb").is_file() and (folder / "grid.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["done"]) == 1 and len(summary["failed"]) == 1


def test_reconstruct_cli_prints_a_note_every_photo_got_once_and_flags_stale_results(
    masked_photo: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the automatic mask's note was printed once per photo of a folder, and a photo that
    # failed on a re-run left its earlier results without a word
    photo, _ = masked_photo
    photos = _folder_of(tmp_path / "photos", {"a.png": photo, "b.png": photo})
    out = tmp_path / "out"
    args = ["reconstruct", str(photos), *QUICK_CLI, "--out", str(out)]
    out.mkdir()
    (out / "metrics.json").write_text("{}")  # as a single photo's run leaves it
    assert main(args) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert f"note: '{out}' holds a single photo's earlier result" in captured.err
    notes = json.loads((out / "a" / "metrics.json").read_text())["mask_notes"]
    assert notes  # the automatic mask says which method it used
    for note in notes:
        assert printed.count(note) == 1 and f"note: all 2 photos: {note}" in printed
    (photos / "b.png").write_text("not a photo any more")
    assert main(args) == 1
    error = capsys.readouterr().err
    assert f"'{out / 'b'}' still holds an earlier run's results" in error


def test_reconstruct_cli_reports_a_missing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconstruct", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a missing mask was named, without saying what to do
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"")
    args = ["reconstruct", str(photo), "--mask", str(tmp_path / "nope.png")]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert "does not exist; check the path" in capsys.readouterr().err
    # a mistyped --model was answered "build the default model with build-model", which
    # makes a face model, not the pipeline reconstruct loads
    args = ["reconstruct", str(photo), "--model", str(tmp_path / "checkpoint")]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "neither a model directory nor a Hub repo id" in error
    assert "check the path" in error and "build-model" not in error


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--formats", "xyz"], "unknown mesh format"),
        (["--formats", ","], "no mesh format given"),
        (["--iterations", "-3"], "iterations must be"),
        (["--fit-iterations", "-3"], "iterations must be"),
        (["--fit-iterations", "100000"], "from 0 to 10000"),
        (["--out", "FILE"], "is a file; give a folder"),
        (["--out", "FILE/inside"], "which is a file"),
    ],
)
def test_reconstruct_cli_refuses_bad_options_before_any_work(
    masked_photo: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    message: str,
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the models were loaded before the options were checked")

    monkeypatch.setattr(Diverse3DFace, "from_pretrained", no_work)
    photo, _ = masked_photo
    existing = tmp_path / "existing.txt"
    existing.write_text("the user's file")
    options = [option.replace("FILE", str(existing)) for option in options]
    if "--out" not in options:
        options += ["--out", str(tmp_path / "out")]
    assert main(["reconstruct", str(photo), "--quiet", *options]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert existing.read_text() == "the user's file" and not (tmp_path / "out").exists()


def test_reconstruct_cli_refuses_a_file_where_a_photos_folder_goes_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the photo ran in full, then failed with "[Errno 17] File exists: '.../a'"
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the models were loaded before --out was checked")

    monkeypatch.setattr(Diverse3DFace, "from_pretrained", no_work)
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    out.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(b"")
    (out / "a").write_text("the user's file")
    assert main(["reconstruct", str(photos), "--quiet", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"'{out / 'a'}' is a file, but a.jpg's results go into a folder" in error
    assert (out / "a").read_text() == "the user's file"


def test_reconstruct_cli_one_bad_photo_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")
    out = tmp_path / "out"
    assert main(["reconstruct", str(broken), "--quiet", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not an image file" in error


def test_fit_settings_reach_the_fit(masked_photo: tuple[Path, Path]) -> None:
    photo, mask = masked_photo
    quick = Diverse3DFace.from_pretrained()
    quick.fit_settings = FitSettings(iterations=10, use_photometric=False)
    result = quick(photo, mask=mask, n=2, iterations=2)
    assert result.fit.settings.iterations == 10


def test_reconstruct_cli_passes_on_what_the_mask_step_noticed(
    masked_photo: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, _ = masked_photo
    assert main(["reconstruct", str(photo), *QUICK_CLI, "--out", str(tmp_path / "auto")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert summary["mask_source"] != "user"
    for note in summary["mask_notes"]:
        assert f"note: {photo}: {note}" in printed
    args = ["reconstruct", str(photo), *QUICK_CLI, "--mask-method", "none"]
    assert main([*args, "--out", str(tmp_path / "no")]) == 0
    printed = capsys.readouterr().out
    assert "nothing was hidden" in printed and "give --mask" in printed


def test_reconstruct_cli_says_when_the_given_mask_hides_nothing(
    masked_photo: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # it said "nothing was hidden ...; give --mask", to a user who had given one
    photo, _ = masked_photo
    with Image.open(photo) as image:
        black = Image.new("L", image.size)
    black.save(tmp_path / "black.png")
    args = ["reconstruct", str(photo), "--mask", str(tmp_path / "black.png"), *QUICK_CLI]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "the given mask hides no part of the face" in printed
    assert "give --mask" not in printed


def test_the_package_lists_the_pipeline_for_tab_completion() -> None:
    # dir(d3dface), which a notebook's tab completion reads, lacked the lazy imports
    assert {"Diverse3DFace", "FaceResult", "__version__"} <= set(dir(d3dface))
    assert set(d3dface.__all__) <= set(dir(d3dface))


def test_run_settings_checks_every_option_without_running() -> None:
    settings, fit = run_settings(3, 0.5, 3.0, 7, iterations=5, fit_iterations=11)
    assert (settings.n_samples, settings.seed, settings.iterations) == (3, 7, 5)
    assert fit.iterations == 11
    with pytest.raises(ValueError, match=r"unknown mask_method 'bogus'.*'none'"):
        run_settings(3, 0.5, 3.0, 0, mask_method="bogus")
    with pytest.raises(ValueError, match="iterations must be"):
        run_settings(3, 0.5, 3.0, 0, fit_iterations=-1)
