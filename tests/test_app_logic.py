"""The app's logic (d3dface.app_logic) without a browser or the real pipeline: fast."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from fake_runs import FakePipeline, FakeResult
from PIL import Image

from d3dface import app_logic as logic
from d3dface.imageio import ImageError
from d3dface.perception.landmarks import NUM_LANDMARKS, ChosenFace, FaceLandmarks

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# ------------------------------------------------------------------------------ settings
def test_validate_settings_accepts_api_values_and_preset_labels() -> None:
    settings = logic.validate_settings("4", 0.5, "3", logic.PRESETS["fast"].label, 7.0)
    assert settings == logic.AppSettings(4, 0.5, 3.0, "fast", 7)
    assert settings.iterations == logic.PRESETS["fast"].iterations
    assert logic.validate_settings(2, 1, 0, "balanced", None).seed == 0
    assert logic.validate_settings(2, 1, 0, "balanced", logic.MAX_SEED).seed == 2**31 - 1
    assert logic.validate_settings(2, 1, 0, "balanced", 0).iterations is None
    assert logic.validate_settings(2, 1, 0, "balanced", 0).face_index == 0
    assert logic.validate_settings(2, 1, 0, "balanced", 0, "2").face_index == 2
    assert logic.validate_settings(2, 1, 0, "balanced", 0, None).face_index == 0


@pytest.mark.parametrize(
    ("n", "k", "n_sigma", "preset", "seed", "words"),
    [
        (0, 0.5, 3, "fast", 0, "number of samples"),
        (logic.MAX_SAMPLES + 1, 0.5, 3, "fast", 0, "number of samples"),
        (2.5, 0.5, 3, "fast", 0, "number of samples"),
        (4, 0, 3, "fast", 0, "k must"),
        (4, "abc", 3, "fast", 0, "k must be a number"),
        (4, 0.5, -1, "fast", 0, "n_sigma"),
        (4, 0.5, float("nan"), "fast", 0, "finite"),
        (4, 0.5, 3, "turbo", 0, "Unknown preset"),
        (4, 0.5, 3, "fast", -3, "seed must be a whole number 0 or more"),
        (4, 0.5, 3, "fast", "-1", "seed must be a whole number 0 or more"),
        (4, 0.5, 3, "fast", 1.5, "seed must be a whole number"),
        (4, 0.5, 3, "fast", logic.MAX_SEED + 1, "at most 2147483647"),
    ],
)
def test_validate_settings_rejects_with_readable_messages(
    n: Any, k: Any, n_sigma: Any, preset: Any, seed: Any, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        logic.validate_settings(n, k, n_sigma, preset, seed)


@pytest.mark.parametrize("face", [-1, 1.5, "x", logic.DEFAULT_MAX_FACES])
def test_validate_settings_rejects_a_face_that_cannot_be(face: Any) -> None:
    with pytest.raises(ValueError, match=r"face must be"):
        logic.validate_settings(4, 0.5, 3, "fast", 0, face)


def _face(index: int, found: int, box: tuple[float, float, float, float]) -> ChosenFace:
    """A ChosenFace whose landmarks span ``box`` (x0, y0, x1, y1)."""
    points = np.zeros((NUM_LANDMARKS, 2), np.float32)
    points[0], points[1] = box[:2], box[2:]
    return ChosenFace(FaceLandmarks(points, np.zeros(NUM_LANDMARKS), np.array(box)), index, found)


def test_face_picker_choices_and_status_name_the_face_by_size() -> None:
    assert logic.face_choices(3) == [("largest", 0), ("2nd largest", 1), ("3rd largest", 2)]
    assert logic.face_status(None) == "" and logic.face_status(_face(0, 1, (1, 1, 9, 9))) == ""
    status = logic.face_status(_face(1, 3, (1, 1, 9, 9)))
    assert "3 faces" in status and "**the 2nd largest**" in status and "**Face**" in status


def test_editor_boxes_the_chosen_face_only_when_the_photo_has_several() -> None:
    photo = np.full((100, 100, 3), 100, np.uint8)
    one, several = _face(0, 1, (40, 40, 60, 60)), _face(0, 2, (40, 40, 60, 60))
    assert (logic.mask_preview(photo, None, one) == photo).all()
    boxed = logic.editor_value(photo, None, several)["background"]
    outline = (boxed == logic.FACE_OUTLINE_RGB).all(axis=2)
    assert outline[38, 45:55].all() and outline[45:55, 62].all()  # 10% outside the face
    assert not outline[45:55, 45:55].any()  # the face itself is left as it is


def test_default_preset_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logic.PRESET_ENV, "test")
    assert logic.default_preset() == "test"
    monkeypatch.setenv(logic.PRESET_ENV, "nonsense")
    assert logic.default_preset() == logic.DEFAULT_PRESET
    monkeypatch.delenv(logic.PRESET_ENV)
    assert logic.default_preset() == logic.DEFAULT_PRESET


def test_the_test_preset_is_offered_only_to_an_app_started_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(logic.PRESET_ENV, raising=False)
    assert logic.listed_presets() == ["fast", "balanced", "quality"]
    monkeypatch.setenv(logic.PRESET_ENV, "quality")
    assert logic.listed_presets() == ["fast", "balanced", "quality"]
    monkeypatch.setenv(logic.PRESET_ENV, "test")
    assert logic.listed_presets() == ["fast", "balanced", "quality", "test"]
    assert logic.validate_settings(4, 0.5, 3, "test", 0).preset == "test"  # the API takes it


# ------------------------------------------------------------------------------ photos, masks
def test_load_photo_scales_large_photos_and_rejects_non_images(tmp_path: Path) -> None:
    big = np.zeros((2000, 3000, 3), np.uint8)
    photo = logic.load_photo(big)
    assert photo.shape == (853, logic.MAX_PHOTO_SIDE, 3) and photo.dtype == np.uint8
    assert logic.load_photo(np.zeros((100, 80, 3), np.uint8)).shape == (100, 80, 3)
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    with pytest.raises(ImageError, match="image"):
        logic.load_photo(str(text))
    with pytest.raises(ImageError, match="Upload a photo"):
        logic.load_photo(None)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny)
    with pytest.raises(ImageError, match=r"^'tiny.png' is only 8x8 pixels"):
        logic.load_photo(str(tiny))  # the upload's name, not the server's path to its copy


@pytest.mark.parametrize(
    ("name", "pillow_format", "shown"),
    [
        ("a.jpg", "JPEG", True),
        ("a.JPEG", "JPEG", True),
        ("a.png", "PNG", True),
        ("a.webp", "WEBP", True),
        ("a.tif", "TIFF", False),
        ("a.tiff", "TIFF", False),
        ("a.bmp", "BMP", False),
        ("a.heic", "HEIF", False),
        ("a.png", "TIFF", False),  # a TIFF under a PNG name
        ("a", "PNG", False),  # no suffix: served without an image type
    ],
)
def test_shows_in_browser_by_suffix_and_content(
    tmp_path: Path, name: str, pillow_format: str, shown: bool
) -> None:
    path = tmp_path / name
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(path, format=pillow_format)
    assert logic.shows_in_browser(path) is shown


def test_browser_copy_keeps_the_pixels_and_removes_old_copies(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tiff = tmp_path / "photo.tif"  # RGBA, and larger than the app works on
    Image.fromarray(rng.integers(0, 255, (900, 1500, 4), np.uint8)).save(tiff)
    photo = logic.load_photo(str(tiff))
    folder = tmp_path / "copies"
    old = logic.browser_copy(photo, folder)
    os.utime(old, (time.time() - 2 * logic.BROWSER_COPY_AGE_S,) * 2)
    copy = logic.browser_copy(photo, folder)
    assert copy.parent == folder and copy.suffix == ".png" and copy.name != old.name
    assert logic.shows_in_browser(copy) and not old.exists()  # the stale copy is gone
    np.testing.assert_array_equal(logic.load_photo(str(copy)), photo)
    assert photo.shape == (768, logic.MAX_PHOTO_SIDE, 3)


def test_editor_shows_the_mask_in_the_photo() -> None:
    photo = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[10:20, 5:25] = True
    value = logic.editor_value(photo, mask)
    assert value["layers"] == [] and value["background"].shape == (40, 60, 3)
    tinted = value["background"]
    assert tinted[15, 15, 0] > 150 > tinted[15, 15, 1]  # red inside the mask
    assert (tinted[30:, 40:] == 100).all()  # untouched far outside
    assert (logic.editor_value(photo, None)["background"] == photo).all()


def _stroke(shape: tuple[int, int], rows: slice, cols: slice, colour: str) -> np.ndarray:
    """An RGBA layer with one painted rectangle of a brush colour ("#rrggbb") at 60% alpha."""
    layer = np.zeros((*shape, 4), np.uint8)
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    layer[rows, cols] = (*rgb, 153)
    return layer


def test_mask_from_editor_applies_hide_and_show_strokes() -> None:
    photo = np.zeros((40, 60, 3), np.uint8)
    base = np.zeros((40, 60), bool)
    base[10:20, 5:25] = True
    value = logic.editor_value(photo, base)
    np.testing.assert_array_equal(logic.mask_from_editor(value, photo.shape, base), base)
    hide = _stroke((40, 60), slice(30, 35), slice(40, 50), logic.BRUSH_HIDE)
    show = _stroke((40, 60), slice(10, 20), slice(5, 10), logic.BRUSH_SHOW)
    painted = logic.mask_from_editor({**value, "layers": [hide, show]}, photo.shape, base)
    assert painted[30:35, 40:50].all() and not painted[10:20, 5:10].any()
    assert painted.sum() == base.sum() - 50 + 50
    # one layer holding both colours, as the editor returns it
    both = np.maximum(hide, show)
    np.testing.assert_array_equal(
        logic.mask_from_editor({**value, "layers": [both]}, photo.shape, base), painted
    )
    # faint anti-aliasing does not count; RGB layers count where non-black
    faint = np.zeros((40, 60, 4), np.uint8)
    faint[..., :3] = 255
    faint[..., 3] = logic.MASK_ALPHA_THRESHOLD - 1
    assert not logic.mask_from_editor({**value, "layers": [faint]}, photo.shape).any()
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[0, 0] = (9, 0, 0)
    assert logic.mask_from_editor({**value, "layers": [rgb]}, photo.shape).sum() == 1


def test_mask_from_editor_without_photo_or_layers() -> None:
    assert logic.mask_from_editor(None, (10, 10, 3)) is None
    assert logic.mask_from_editor({"background": None, "layers": []}, (10, 10, 3)) is None
    empty = logic.mask_from_editor({"background": np.zeros((10, 10, 3)), "layers": []}, (10, 10))
    assert empty is not None and not empty.any()


def test_editor_mask_of_an_api_call_is_its_hide_strokes_or_nothing() -> None:
    # no mask shown (an API call): an editor with any picture and no strokes hid nothing, and
    # that empty mask overrode the mask file given with it
    photo = np.zeros((40, 60, 3), np.uint8)
    other = {"background": np.zeros((30, 30, 3), np.uint8), "layers": []}
    assert logic.editor_mask(other, photo, None) is None
    show_only = {**other, "layers": [_stroke((40, 60), slice(0, 5), slice(0, 5), logic.BRUSH_SHOW)]}
    assert logic.editor_mask(show_only, photo, None) is None
    hide = {**other, "layers": [_stroke((40, 60), slice(0, 5), slice(0, 5), logic.BRUSH_HIDE)]}
    assert logic.editor_mask(hide, photo, None).sum() == 25
    # in the app, a cleared mask (nothing hidden) is still the mask used
    cleared = logic.editor_mask(
        logic.editor_value(photo, None), photo, logic.ShownMask.of(photo, None)
    )
    assert cleared is not None and not cleared.any()


def test_mask_from_editor_scales_layers_of_the_same_shape_only() -> None:
    half = _stroke((20, 30), slice(0, 10), slice(0, 15), logic.BRUSH_HIDE)
    value = {"background": np.zeros((20, 30, 3)), "layers": [half]}
    full = logic.mask_from_editor(value, (40, 60, 3))
    assert full.shape == (40, 60) and full[:20, :30].all() and not full[20:, 30:].any()
    with pytest.raises(ValueError, match="different shape"):
        logic.mask_from_editor(value, (60, 40, 3))


def test_load_mask_file(tmp_path: Path) -> None:
    mask = np.zeros((30, 40), np.uint8)
    mask[5:10, 5:20] = 255
    path = tmp_path / "mask.png"
    Image.fromarray(mask).save(path)
    loaded = logic.load_mask_file(path, (30, 40, 3))
    np.testing.assert_array_equal(loaded, mask > 0)
    assert logic.load_mask_file(path, (60, 80)).sum() == 4 * loaded.sum()  # original-size mask
    with pytest.raises(ValueError, match="different shape"):
        logic.load_mask_file(path, (40, 40))
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ImageError, match="not an image"):
        logic.load_mask_file(tmp_path / "bad.png", (30, 40))


def test_examples_are_small_and_paired_with_masks() -> None:
    records = json.loads((EXAMPLES / "examples.json").read_text())
    assert len(records) >= 4
    total = 0
    for record in records:
        photo, mask = EXAMPLES / record["photo"], EXAMPLES / record["mask"]
        with Image.open(photo) as image, Image.open(mask) as mask_image:
            assert max(image.size) <= 640 and image.size == mask_image.size
        total += photo.stat().st_size + mask.stat().st_size
        loaded = logic.load_mask_file(mask, logic.load_photo(str(photo)).shape)
        assert 0.0 < loaded.mean() < 0.6
    assert total < 1_000_000


def test_make_examples_remakes_the_render_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # examples/README.md's `python examples/make_examples.py` stopped with an ImportError: the
    # render example used d3dface.diversity.facial_vertices, which had been removed
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_examples", module)
    spec.loader.exec_module(module)
    example = next(e for e in module.EXAMPLES if e.source == "render")
    record = module.make_example(example, tmp_path, tmp_path)
    committed = next(
        r
        for r in json.loads((EXAMPLES / "examples.json").read_text())
        if r["photo"] == record["photo"]
    )
    assert record == committed
    for name in (record["photo"], record["mask"]):
        with Image.open(tmp_path / name) as made, Image.open(EXAMPLES / name) as shipped:
            difference = np.abs(np.asarray(made, np.int16) - np.asarray(shipped, np.int16))
        assert difference.mean() < 1.0


# ------------------------------------------------------------------------------ runs
class FalsyProgress:
    """Records progress reports and, like a ``gr.Progress``, has a length of 0 (so it is
    falsy) until a run fills it."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, str | None]] = []

    def __len__(self) -> int:
        return 0

    def __call__(self, fraction: float, text: str | None = None) -> None:
        self.reports.append((fraction, text))


def test_reconstruct_writes_a_run_folder_zip_and_thumbnails(tmp_path: Path) -> None:
    store = logic.RunStore(tmp_path, capacity=2)
    pipeline = FakePipeline()
    progress = FalsyProgress()
    reports = progress.reports
    settings = logic.validate_settings(3, 0.5, 3.0, "test", 1, 1)
    mask = np.zeros((8, 8), bool)
    out = logic.reconstruct(
        pipeline,  # type: ignore[arg-type]
        np.zeros((8, 8, 3), np.uint8),
        mask,
        settings,
        store,
        progress,
    )
    assert pipeline.kwargs["mask"] is mask and pipeline.kwargs["n"] == 3
    assert pipeline.kwargs["face_index"] == 1
    assert pipeline.kwargs["iterations"] == logic.PRESETS["test"].iterations
    assert out.directory.parent == tmp_path and out.run_id in out.directory.name
    assert [path.name for path in out.sample_glbs] == [f"sample_0{i}.glb" for i in range(3)]
    assert all(path.is_file() for path in [*out.sample_glbs, *out.thumbnails, out.spread_glb])
    assert reports[0] == (0.45, "fitting") and reports[-1][0] == 1.0
    with zipfile.ZipFile(out.zip_path) as archive:
        names = set(archive.namelist())
    assert {"sample_00.glb", "sample_02.obj", "sample_01.ply", "metrics.json", "mask.png"} <= names
    assert not any(name.startswith("thumb_") for name in names)
    with Image.open(out.thumbnails[0]) as thumbnail:
        assert thumbnail.width > thumbnail.height  # front and turned views side by side
    assert out.summary["app"]["preset"] == "test" and len(store) == 1
    # the run is known by the photo it was given (FakeResult has no photo of its own)
    assert logic.run_photo_is(store, out.run_id, np.zeros((8, 8, 3), np.uint8))
    assert not logic.run_photo_is(store, out.run_id, np.ones((8, 8, 3), np.uint8))
    assert not logic.run_photo_is(store, "unknown", np.zeros((8, 8, 3), np.uint8))
    text = logic.summary_markdown(out.summary)
    assert "3 completions" in text and "6.0" in text and "25.0% of the photo hidden" in text


def test_reconstruct_removes_its_folder_on_error(tmp_path: Path) -> None:
    def failing(photo: np.ndarray, **kwargs: Any) -> None:
        raise ValueError("No face was found")

    store = logic.RunStore(tmp_path)
    settings = logic.validate_settings(2, 0.5, 3.0, "test", 0)
    with pytest.raises(ValueError, match="No face"):
        logic.reconstruct(failing, np.zeros((8, 8, 3), np.uint8), None, settings, store)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == [] and len(store) == 0


def test_store_drops_old_runs_and_interpolates(tmp_path: Path) -> None:
    store = logic.RunStore(tmp_path, capacity=2)
    runs = []
    for _ in range(3):
        run_id, directory = store.new_directory()
        store.add(run_id, FakeResult(2), directory)  # type: ignore[arg-type]
        runs.append((run_id, directory))
    assert not runs[0][1].exists() and runs[2][1].exists() and len(store) == 2
    with pytest.raises(ValueError, match="Reconstruct again"):
        store.get(runs[0][0])
    run_id, directory = runs[2]
    assert [p.name for p in logic.sample_glbs(store, run_id)] == ["sample_00.glb", "sample_01.glb"]
    first = logic.interpolation_mesh(store, run_id, 0, 1, 0.0)
    second = logic.interpolation_mesh(store, run_id, 0, 1, 1.0)
    assert not first.parent.exists() and second.exists()  # the older blend is gone
    # named as the interpolate command names blends (it was "interp_<hex>.glb"), each in a
    # folder of its own: the same blend asked for twice is two files
    assert (first.name, second.name) == ("blend_00_01_000.glb", "blend_00_01_100.glb")
    mesh = trimesh.load(second, force="mesh", process=False)
    np.testing.assert_allclose(
        np.sort(np.linalg.norm(mesh.vertices, axis=1)),
        np.full(len(mesh.vertices), 0.105),
        atol=1e-5,
    )
    again = logic.interpolation_mesh(store, run_id, 0, 1, 1.0)
    assert again.name == second.name and again != second
    assert again.parent.parent == directory / "blends"
    assert logic.interpolation_mesh(store, run_id, 1, 0, 0.35).name == "blend_01_00_035.glb"
    assert len(list(directory.glob("blends/*"))) == 1
    with pytest.raises(ValueError, match=r"blend t must be a number in \[0, 1\], got 1.5"):
        logic.interpolation_mesh(store, run_id, 0, 1, 1.5)
    with pytest.raises(ValueError, match="Pick two samples"):
        logic.interpolation_mesh(store, run_id, None, 1, 0.5)
    with pytest.raises(ValueError, match="Reconstruct"):
        logic.interpolation_mesh(store, None, 0, 1, 0.5)


def test_summary_without_metrics_and_device_note() -> None:
    text = logic.summary_markdown({"settings": {"n_samples": 1}, "timings_s": {"total": 1.0}})
    assert "1 completion in" in text and "No diversity metrics" in text and "face:" not in text
    face = _face(1, 2, (1, 1, 9, 9)).summary()
    text = logic.summary_markdown({"settings": {"n_samples": 1}, "face": face})
    assert "face: the 2nd largest of 2 faces (x 1-9, y 1-9 px)" in text
    assert "CPU" in logic.device_note()


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("user", "mask of step 2, 25.0% of the photo hidden"),
        ("model", "mask found automatically, 25.0% of the photo hidden"),
        ("facexlib", "mask found automatically, 25.0% of the photo hidden"),
        ("none", "no mask (nothing hidden), 25.0% of the photo hidden"),
    ],
)
def test_summary_says_where_the_mask_came_from_in_the_words_of_the_mask_status(
    source: str, words: str
) -> None:
    # an automatic mask was "mask: model" in the summary, "found automatically" in the status
    text = logic.summary_markdown({"mask_source": source, "occluded_pixel_fraction": 0.25})
    assert f"; {words};" in text and f"mask: {source}" not in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("no face here", "No face here."),
        ("'face.jpg' is empty; use a photo", "'face.jpg' is empty; use a photo."),
        ("Done.", "Done."),
        ("Really?", "Really?"),
        ("  spaced out  ", "Spaced out."),
        ("", ""),
    ],
)
def test_sentence_capitalises_and_ends_with_a_full_stop(text: str, shown: str) -> None:
    assert logic.sentence(text) == shown


def test_popup_text_is_plain_text_with_the_title_on_its_first_line() -> None:
    # API clients got the browser's HTML: "<strong>Photo not usable.</strong> 'a&lt;b&gt;.png'"
    text = logic.popup_text("Photo not usable", "'a<b>.png' is empty")
    assert text == "Photo not usable.\n'a<b>.png' is empty."
