"""The app's events (space_app): photos the browser cannot show, example masks, mask files
before and after the photo, the settings' messages."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np
import pytest
import trimesh
from fake_runs import FakeResult
from gradio.data_classes import ImageData
from PIL import Image

import space_app
from d3dface import app_logic as logic
from d3dface.perception.landmarks import LandmarkDetector, NoFaceError

EXAMPLE = space_app.EXAMPLES / "obama_face_mask.jpg"
EXAMPLE_MASK = space_app.EXAMPLES / "obama_face_mask_mask.png"


def test_an_example_photo_gets_its_shipped_mask(tmp_path: Path) -> None:
    copy = tmp_path / EXAMPLE.name  # Gradio hands over a copy under the same name
    shutil.copy(EXAMPLE, copy)
    pixels = logic.load_photo(str(copy))
    assert space_app.example_mask(str(copy), pixels) == EXAMPLE_MASK
    assert space_app.example_mask(str(tmp_path / "holiday.jpg"), pixels) is None
    editor, kept, status, _, photo_update, _ = space_app.on_photo(str(copy), None)
    shipped = logic.load_mask_file(EXAMPLE_MASK, logic.load_photo(str(copy)).shape)
    np.testing.assert_array_equal(kept.mask, shipped)
    assert status.startswith("**Mask of the example**") and "% of the photo hidden" in status
    assert editor["background"].shape[:2] == shipped.shape
    assert photo_update == gr.skip()  # a JPEG stays in the Photo box as it is


@pytest.mark.parametrize("size", ["other", "same"])
def test_a_photo_of_ones_own_named_like_an_example_gets_its_own_mask(
    tmp_path: Path, size: str
) -> None:
    # the example's mask went by the file's name alone: a photo of another shape was refused
    # "The mask file is 640x589 pixels but the photo is ..." (no mask file was given), one of
    # the same shape got the example's mask, as "Mask of the example"
    example = logic.load_photo(str(EXAMPLE))
    other = example[:, ::-1] if size == "same" else np.pad(example, ((0, 0), (0, 200), (0, 0)))
    mine = tmp_path / EXAMPLE.name
    Image.fromarray(np.ascontiguousarray(other)).save(mine, quality=95)
    assert space_app.example_mask(str(mine), logic.load_photo(str(mine))) is None
    _, kept, status, _, _, _ = space_app.on_photo(str(mine), None)
    assert status.startswith("**Mask found automatically")
    assert kept.is_of(logic.load_photo(str(mine)))
    # every automatic mask said "(model)" and that facexlib was not installed, which no user
    # of the app can do anything about
    assert "(model)" not in status and "facexlib" not in status


def test_a_mask_file_given_before_the_photo_is_used_when_it_fits(tmp_path: Path) -> None:
    waiting = space_app.on_mask_file(None, str(EXAMPLE_MASK))
    assert "used when you upload its photo" in waiting[2]
    photo = tmp_path / "mine.jpg"  # not named like an example
    shutil.copy(EXAMPLE, photo)
    _, kept, status, _, _, _ = space_app.on_photo(str(photo), str(EXAMPLE_MASK))
    assert status.startswith("**Mask from your file:**")
    assert kept.mask.sum() == logic.load_mask_file(EXAMPLE_MASK, kept.mask.shape).sum()


@pytest.mark.parametrize("bad", ["small", "text"])
def test_a_mask_file_that_does_not_fit_is_refused_and_cleared(tmp_path: Path, bad: str) -> None:
    mask = tmp_path / "mask.png"
    if bad == "small":
        Image.fromarray(np.zeros((30, 30), np.uint8)).save(mask)
    else:
        mask.write_text("not a picture")
    with pytest.warns(UserWarning, match="mask file"):  # gr.Warning outside an event
        _, _, status, file_update = space_app.on_mask_file(str(EXAMPLE), str(mask))
    assert status.startswith("**Your mask file was not used:**") and file_update is None
    # the photo's example mask is shown instead of the refused file, which is cleared
    _, kept, status, file_update, _, _ = space_app.on_photo(str(EXAMPLE), str(mask))
    assert "Your mask file was not used" in status and "Mask of the example" in status
    assert file_update is None and kept.mask.any()


@pytest.mark.parametrize("name", ["mine.jpg", EXAMPLE.name])
def test_a_refused_mask_file_leaves_the_face_to_be_found_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # the face was found for the mask file, which was then refused, and found again for the
    # automatic mask
    detections: list[np.ndarray] = []
    detect = LandmarkDetector.detect

    def counted(detector: LandmarkDetector, image: np.ndarray) -> Any:
        detections.append(image)
        return detect(detector, image)

    monkeypatch.setattr(LandmarkDetector, "detect", counted)
    photo = tmp_path / name  # one of one's own (the automatic mask), or the example
    shutil.copy(EXAMPLE, photo)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(mask)
    _, kept, status, file_update, _, _ = space_app.on_photo(str(photo), str(mask))
    assert "Your mask file was not used" in status and file_update is None and kept.mask.any()
    assert len(detections) == 1
    with pytest.warns(UserWarning, match="mask file"):  # refused on its own: no face needed
        space_app.on_mask_file(str(photo), str(mask))
    assert len(detections) == 1


def test_a_refused_mask_files_warning_is_written_as_a_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(path: str, shape: tuple[int, ...]) -> None:
        raise ValueError("the mask file is odd")

    monkeypatch.setattr(logic, "load_mask_file", refuse)
    with pytest.warns(UserWarning) as warned:
        space_app.on_mask_file(str(EXAMPLE), str(EXAMPLE_MASK))
    assert [str(warning.message) for warning in warned] == [
        "Mask file not used.\nThe mask file is odd."
    ]


@pytest.mark.parametrize("suffix", [".tif", ".heic"])
def test_a_photo_the_browser_cannot_show_is_replaced_by_a_png_copy(
    tmp_path: Path, suffix: str
) -> None:
    tiff = tmp_path / f"mine{suffix}"  # a TIFF, or a phone's HEIC
    Image.open(EXAMPLE).save(tiff)
    # one call (the Photo box's input event comes once): the PNG copy and the mask together
    editor, kept, status, _, photo_update, _ = space_app.on_photo(str(tiff), str(EXAMPLE_MASK))
    copy = Path(photo_update)
    assert copy.suffix == ".png" and copy.parent == space_app.photo_copies()
    assert logic.shows_in_browser(copy)
    np.testing.assert_array_equal(logic.load_photo(str(copy)), logic.load_photo(str(tiff)))
    assert status.startswith("**Mask from your file:**")
    assert kept.mask.shape == editor["background"].shape[:2] and kept.mask.any()
    # the copy is of the photo the mask was drawn for
    assert kept.photo == logic.photo_key(logic.load_photo(str(copy)))


def test_a_new_photo_finds_its_mask_once_not_on_every_change_of_the_photo_box() -> None:
    # the Photo box reports a change two or three times per upload, and each found the mask
    # again (a "No face found" pop-up came as often) and hid the results again, the last
    # ones after a run had shown its own; its input event comes once, and an example's click
    # (which sets the box without an input event) runs the handlers after it
    fns = space_app.demo.fns.values()
    photo_id = _block("photo")._id
    for handler in (space_app.on_photo, space_app.results_view):
        on_new_photo = [f for f in fns if f.fn is handler and f.targets[0][1] in ("input", "then")]
        assert [f.targets for f in on_new_photo if f.trigger_after is None] == [
            [(photo_id, "input")]
        ]
        examples_load = next(f for f in on_new_photo if f.trigger_after is not None)
        assert space_app.demo.fns[examples_load.trigger_after].targets[0][1] == "click"
    assert not any((photo_id, "change") in f.targets for f in fns)


def test_a_removed_photo_empties_the_editor_and_no_event_shows_progress_on_it() -> None:
    # Gradio applies each progress update of the editor only after uploading the editor's
    # picture, so the updates could land out of order: after most removals of a photo (which
    # empty the editor at once) a "processing" overlay stayed on the editor, its timer running
    *emptied, picker = space_app.on_photo(None, None)
    assert emptied == [None, None, space_app.MASK_HINT, gr.skip(), gr.skip()]
    assert picker["visible"] is False
    editor = _block("mask-editor")
    fns = space_app.demo.fns.values()
    assert {f.fn for f in fns if editor in f.outputs} == {
        space_app.on_photo,
        space_app.on_photo_failed,
        space_app.on_face,
        space_app.on_find_mask,
        space_app.on_clear_mask,
        space_app.on_mask_file,
    }
    for f in fns:
        assert editor not in (f.show_progress_on or f.outputs)  # Gradio's progress targets
        if editor in f.outputs:  # their progress shows on the status line instead
            assert _block("mask-status") in f.show_progress_on


def test_the_editors_own_bin_puts_the_photo_back_with_nothing_hidden() -> None:
    # the editor's "Clear canvas" emptied it, photo included: the run then found a mask
    # itself while the status still named the one shown, and the photo was gone from the
    # editor until it was given again
    editor = _block("mask-editor")
    cleared = [f for f in space_app.demo.fns.values() if (editor._id, "clear") in f.targets]
    assert [f.fn for f in cleared] == [space_app.on_clear_mask]
    assert cleared[0].inputs == [_block("photo"), _block("face")]
    assert cleared[0].outputs[:1] + cleared[0].outputs[2:] == [editor, _block("mask-status")]
    shown, kept, status = space_app.on_clear_mask(str(EXAMPLE), 0)
    assert shown["background"].shape == logic.load_photo(str(EXAMPLE)).shape
    assert kept.mask is None and status.startswith("**Mask cleared:**")


def test_a_photo_that_cannot_be_used_clears_the_earlier_photos_mask_and_results() -> None:
    # a file that is not an image (refused by the Photo box's preprocess, before on_photo
    # runs) got its error pop-up, while the editor kept the earlier photo's mask, for the
    # run to use with no photo of its own
    fns = space_app.demo.fns
    for listener in (f for f in fns.values() if f.fn is space_app.on_photo):
        failed = [f for f in fns.values() if f.trigger_after == listener._id]
        assert [(f.fn, f.trigger_only_on_failure) for f in failed] == [
            (space_app.on_photo_failed, True)
        ]
        assert [block.elem_id for block in failed[0].outputs] == [
            "mask-editor",
            None,  # the kept mask (a State)
            "mask-status",
            "face",
            "results",
            None,  # the every-sample section
            "summary",
        ]
    # the results' own listener fails too, and left an "Error" badge over the summary's hint
    on_new_photo = [
        f
        for f in fns.values()
        if f.fn is space_app.results_view and f.targets[0][1] in ("input", "then")
    ]
    assert [f.show_progress for f in on_new_photo] == ["hidden", "hidden"]
    editor, kept, status, picker, results, every_sample, summary = space_app.on_photo_failed()
    assert editor is None and kept is None and picker["visible"] is False
    assert status.startswith("**No mask:** that photo could not be used")
    assert results["visible"] is every_sample["visible"] is False
    assert summary == space_app.RESULTS_HINT


def test_a_photo_given_while_a_mask_is_found_gets_its_turn_after() -> None:
    # on_photo's listeners skipped a photo given (or removed) while they ran, and the editor
    # kept the earlier photo's mask
    listeners = [f for f in space_app.demo.fns.values() if f.fn is space_app.on_photo]
    assert len(listeners) == 2
    assert all(f.trigger_mode == "always_last" for f in listeners)


def test_visitors_are_not_offered_the_test_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logic.PRESET_ENV, raising=False)
    demo = space_app.build_demo()
    radio = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "preset")
    assert [name for _, name in radio.choices] == ["fast", "balanced", "quality"]
    assert radio.value == logic.DEFAULT_PRESET


def _block(elem_id: str) -> gr.components.Component:
    """The app's component with this ``elem_id``."""
    return next(
        block
        for block in space_app.demo.blocks.values()
        if getattr(block, "elem_id", None) == elem_id
    )


def test_a_non_image_photo_gets_the_readable_error_after_the_photo_was_updated(
    tmp_path: Path,
) -> None:
    # Gradio rebuilds a component from its constructor arguments whenever an event sends it
    # an update (gr.skip() from on_photo, an example's click): a patch on the first instance
    # was lost, so from the second upload on a text file renamed .jpg got Gradio's
    # "Could not preprocess input component ..." with the server's paths
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a photo")
    payload = ImageData(path=str(fake), orig_name=fake.name)
    photo = _block("photo")
    rebuilt = type(photo)(**photo.constructor_args)
    for block in (photo, rebuilt):
        with pytest.raises(gr.Error, match="not an image that can be read") as error:
            block.preprocess(payload)
        assert error.value.title == space_app.PHOTO_NOT_USABLE
    assert rebuilt.get_block_name() == "image"  # the browser's own Image component
    assert not Path(space_app.__file__).with_suffix(".pyi").exists()  # no stub written


@pytest.mark.parametrize("name", logic.PHOTO_FORMATS)
def test_every_photo_format_the_label_names_gets_its_mask(tmp_path: Path, name: str) -> None:
    assert name in _block("photo").label
    photo = tmp_path / f"mine.{name.lower()}"
    Image.open(EXAMPLE).save(photo, format={"HEIC": "HEIF"}.get(name, name))  # Pillow's names
    _, kept, status, _, photo_update, _ = space_app.on_photo(str(photo), str(EXAMPLE_MASK))
    assert status.startswith("**Mask from your file:**") and kept.mask.any()
    if logic.shows_in_browser(photo):
        assert photo_update == gr.skip()
    else:  # the Photo box shows a PNG copy
        assert Path(photo_update).suffix == ".png"


def test_a_negative_seed_gets_the_apps_message_not_gradios_range_error() -> None:
    seed = _block("seed")
    assert seed.preprocess(-3) == -3  # Gradio's own check ("less than minimum value") is off
    with pytest.raises(gr.Error, match=r"seed must be a whole number 0 or more") as error:
        space_app.on_reconstruct(str(EXAMPLE), None, None, 2, 0.5, 3.0, "test", seed.preprocess(-3))
    assert error.value.title == "Setting not valid"
    assert error.value.message.startswith("Setting not valid.\nThe seed must")


@pytest.mark.parametrize(
    ("elem_id", "value", "words"),
    [
        ("n-samples", 13, "For Number of samples N, use a number from 1 to 12 (got 13)."),
        ("k", 0, "For k, use a number from 0.05 to 5 (got 0)."),
        ("n-sigma", -1, "For n_sigma, use a number from 0 to 10 (got -1)."),
        ("k", "abc", "For k, use a number from 0.05 to 5 (got 'abc')."),
    ],
)
def test_a_setting_out_of_range_is_refused_by_its_name(
    elem_id: str, value: object, words: str
) -> None:
    # Gradio's own range check said only "Value 13 is greater than maximum value 12." (an API
    # call; the browser keeps a slider in its range)
    slider = _block(elem_id)
    with pytest.raises(gr.Error) as error:
        slider.preprocess(value)
    assert error.value.title == space_app.SETTING_NOT_VALID
    assert error.value.message == f"{space_app.SETTING_NOT_VALID}.\n{words}"
    assert slider.preprocess(slider.value) == slider.value  # in range: as Gradio's
    assert type(slider)(**slider.constructor_args).get_block_name() == "slider"


def _no_pipeline(monkeypatch: pytest.MonkeyPatch, failure: Exception | None = None) -> None:
    """Reconstruct without loading the models: ``logic.reconstruct`` raises ``failure``."""

    def reconstruct(*args: object, **kwargs: object) -> None:
        raise failure or AssertionError("reconstruct was not expected to run")

    monkeypatch.setattr(logic, "get_pipeline", lambda: None)
    monkeypatch.setattr(logic, "reconstruct", reconstruct)


@pytest.mark.parametrize(
    ("photo", "mask_file", "failure", "title", "words"),
    [
        (None, None, None, "Photo not usable", "Upload a photo of a face first"),
        (EXAMPLE, "small", None, "Mask not usable", "The mask file is 30x30 pixels"),
        (EXAMPLE, None, NoFaceError("no face was found"), "No face found", "No face was found."),
        (EXAMPLE, None, RuntimeError("out of memory"), "Reconstruction failed", "RuntimeError"),
    ],
)
def test_error_pop_ups_are_titled_with_what_failed(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    photo: Path | None,
    mask_file: str | None,
    failure: Exception | None,
    title: str,
    words: str,
) -> None:
    _no_pipeline(monkeypatch, failure)
    if mask_file == "small":
        mask_file = str(tmp_path / "mask.png")
        Image.fromarray(np.zeros((30, 30), np.uint8)).save(mask_file)
    with pytest.raises(gr.Error) as error:
        space_app.on_reconstruct(photo and str(photo), None, mask_file, 2, 0.5, 3.0, "test", 0)
    assert error.value.title == title
    # Gradio 6.31 shows the kind of pop-up ("Error") as its heading, so the message leads
    # with the title, on a line of its own (the app's stylesheet sets it in bold); plain
    # text, as API clients get it (its HTML reached them as "<strong>Photo not usable.</strong>")
    assert error.value.message.startswith(f"{title}.\n")
    assert "<" not in error.value.message
    assert words in error.value.message


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What a run was given: the mask reaches ``used["mask"]``, and the run stops there with
    the error "stop here"."""
    given: dict[str, Any] = {}

    def reconstruct(pipeline: object, image: np.ndarray, mask: Any, *args: object) -> None:
        given["mask"] = mask
        raise RuntimeError("stop here")

    monkeypatch.setattr(logic, "get_pipeline", lambda: None)
    monkeypatch.setattr(logic, "reconstruct", reconstruct)
    return given


@pytest.mark.parametrize("shape", ["other", "same"])
def test_reconstruct_pressed_before_a_new_photos_mask_is_shown_ignores_the_earlier_one(
    used: dict[str, Any], tmp_path: Path, shape: str
) -> None:
    # the editor and the kept mask still hold the previous photo's until on_photo has found
    # the new one: that mask was refused ("draw the mask on this photo", though nobody drew
    # anything) or, for a photo of the same size, silently used on the new photo
    editor, kept, *_ = space_app.on_photo(str(EXAMPLE), None)  # the example and its mask
    new = logic.load_photo(str(EXAMPLE))[::-1].copy()  # another photo: the example upside down
    if shape == "other":
        new = new[:, : new.shape[1] // 2]
    photo = tmp_path / "next.png"
    Image.fromarray(new).save(photo)
    with pytest.raises(gr.Error, match="stop here"):
        space_app.on_reconstruct(str(photo), editor, None, 2, 0.5, 3.0, "test", 0, kept)
    assert used["mask"] is None  # found automatically for the new photo
    # the editor's mask of this photo (with the user's strokes) is still the one used
    with pytest.raises(gr.Error, match="stop here"):
        space_app.on_reconstruct(str(EXAMPLE), editor, None, 2, 0.5, 3.0, "test", 0, kept)
    np.testing.assert_array_equal(used["mask"], kept.mask)


def test_an_api_call_with_an_editor_without_strokes_uses_its_mask_file(
    used: dict[str, Any],
) -> None:
    # the API page's snippet passes an editor (a picture, no layers) and a mask file: the
    # run hid nothing ("0.0% of the photo hidden"), the mask file unused
    editor = {"background": np.zeros((300, 400, 3), np.uint8), "layers": [], "composite": None}
    with pytest.raises(gr.Error, match="stop here"):
        space_app.on_reconstruct(str(EXAMPLE), editor, str(EXAMPLE_MASK), 2, 0.5, 3.0, "test", 0)
    shape = logic.load_photo(str(EXAMPLE)).shape
    np.testing.assert_array_equal(used["mask"], logic.load_mask_file(EXAMPLE_MASK, shape))


def _stored_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> tuple[str, Path, FakeResult]:
    """A run of ``n`` fake samples, its GLBs written, kept in the app's store (a new one in
    ``tmp_path``): its id, folder and result."""
    store = logic.RunStore(tmp_path)
    monkeypatch.setattr(space_app, "STORE", store)
    run_id, directory = store.new_directory()
    result = FakeResult(n)
    result.save(directory, ("glb",))
    store.add(run_id, result, directory)  # type: ignore[arg-type]
    return run_id, directory, result


@pytest.mark.parametrize("n", [1, 2])
def test_picking_a_thumbnail_shows_it_and_blends_only_when_there_are_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    run_id, directory, _ = _stored_run(tmp_path, monkeypatch, n)
    picked = SimpleNamespace(index=n - 1)  # what on_pick reads of gr.SelectData
    shown, start, _, blended = space_app.on_pick(run_id, 0, 0, 0.5, picked)  # type: ignore[arg-type]
    assert shown["value"] == str(directory / f"sample_0{n - 1}.glb")
    assert shown["label"] == f"sample {n - 1}" and start["value"] == n - 1
    blends = sorted(directory.glob("blends/*/blend_*.glb"))
    if n == 1:
        assert blended == gr.update() and blends == []  # nothing decoded for the hidden viewer
    else:
        assert blends == [Path(blended)]


def test_picking_the_to_sample_swaps_the_blends_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # picking the thumbnail of the "to" sample made it "from" as well: the blend was of a
    # sample with itself, and its slider changed nothing
    run_id, _, result = _stored_run(tmp_path, monkeypatch, 3)
    for picked, to in [(1, 0), (2, 1)]:  # from 0 to 1: pick 1, then 2 (not "to": it stays)
        event = SimpleNamespace(index=picked)
        _, start, end, blended = space_app.on_pick(run_id, 0, 1, 0.9, event)  # type: ignore[arg-type]
        assert (start["value"], end["value"]) == (picked, to)
        blend = (0.1 * result.samples[picked] + 0.9 * result.samples[to]).numpy()
        vertices = trimesh.load(blended, force="mesh").vertices
        np.testing.assert_allclose(np.sort(vertices, axis=0), np.sort(blend, axis=0), atol=1e-5)
    select = next(f for f in space_app.demo.fns.values() if f.fn is space_app.on_pick)
    assert [block.elem_id for block in select.inputs[1:3]] == ["blend-from", "blend-to"]
    assert [block.elem_id for block in select.outputs[1:3]] == ["blend-from", "blend-to"]


def test_results_stay_for_their_photo_and_give_way_to_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the Photo box reports a change several times per upload, the last ones seconds later:
    # each one hid the results, also those of a run started meanwhile (its summary came, its
    # thumbnails, viewers and download stayed hidden); and a new photo left the summary and
    # metrics of the earlier photo's run on the page
    store = logic.RunStore(tmp_path)
    monkeypatch.setattr(space_app, "STORE", store)
    run_id, directory = store.new_directory()
    # the key of the photo the run was given: the result's own photo is shrunk when the face
    # is large, and a run of a close-up hid its results at once
    example_key = logic.photo_key(logic.load_photo(str(EXAMPLE)))
    store.add(run_id, FakeResult(2), directory, example_key)  # type: ignore[arg-type]
    other = tmp_path / "other.png"
    Image.fromarray(np.full((60, 50, 3), 90, np.uint8)).save(other)
    shown = gr.update(visible=True)
    assert space_app.results_view(str(EXAMPLE), run_id) == (shown, shown, gr.skip())
    hidden = (gr.update(visible=False),) * 2 + (space_app.RESULTS_HINT,)
    for photo in (str(other), None, str(tmp_path / "gone.jpg")):
        assert space_app.results_view(photo, run_id) == hidden
    assert space_app.results_view(str(EXAMPLE), None) == hidden
    # a new photo (its input event, an example's click) goes through it, and so does the
    # end of a run (before its viewers load, or its failure: a failed run after a new photo
    # showed the earlier photo's results again)
    uses = [f for f in space_app.demo.fns.values() if f.fn is space_app.results_view]
    assert sorted(f.targets[0][1] for f in uses) == ["failure", "input", "success", "then"]
    for use in uses:
        assert [block.elem_id for block in use.outputs][:3:2] == ["results", "summary"]
    loads = next(f for f in space_app.demo.fns.values() if f.fn is space_app.on_result)
    assert loads.trigger_after == next(f._id for f in uses if f.targets[0][1] == "success")


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first example photo with a copy of it at 2/3 size to its right (not named like an
    example, so its mask is found automatically)."""
    photo = logic.load_photo(str(EXAMPLE))
    height, width = photo.shape[:2]
    small = np.asarray(Image.fromarray(photo).resize((2 * width // 3, 2 * height // 3)))
    canvas = np.full((photo.shape[0], photo.shape[1] + small.shape[1], 3), 255, np.uint8)
    canvas[:, : photo.shape[1]] = photo
    canvas[: small.shape[0], photo.shape[1] :] = small
    path = tmp_path_factory.mktemp("group") / "group.png"
    Image.fromarray(canvas).save(path)
    return path


def _boxed_columns(editor: dict[str, Any]) -> np.ndarray:
    """The columns of the editor's picture that hold the chosen face's box."""
    outline = (editor["background"] == logic.FACE_OUTLINE_RGB).all(axis=2)
    return np.flatnonzero(outline.any(axis=0))


def test_a_photo_with_several_faces_gets_the_face_picker_and_the_picked_faces_mask(
    two_faces: Path,
) -> None:
    width = logic.load_photo(str(EXAMPLE)).shape[1]
    editor, kept, status, _, _, picker = space_app.on_photo(str(two_faces), None)
    assert picker["visible"] is True and picker["value"] == 0
    assert picker["choices"] == [("largest", 0), ("2nd largest", 1)]
    assert "This photo has 2 faces: this is **the largest**" in status
    assert _boxed_columns(editor).max() < width and kept.mask[:, :width].any()

    editor, kept, status, _ = space_app.on_face(str(two_faces), None, 1)
    assert "this is **the 2nd largest**" in status
    assert _boxed_columns(editor).min() > width and not kept.mask[:, :width].any()
    assert kept.is_of(logic.load_photo(str(two_faces)))
    _, _, status = space_app.on_clear_mask(str(two_faces), 1)
    assert "Mask cleared" in status and "the 2nd largest" in status

    *_, status, _, _, picker = space_app.on_photo(str(EXAMPLE), None)  # one face: no picker
    assert picker["visible"] is False and "faces" not in status
    assert space_app.on_photo(None, None)[-1]["visible"] is False


def test_reconstruct_runs_on_the_picked_face_of_the_photo_shown(
    monkeypatch: pytest.MonkeyPatch, two_faces: Path
) -> None:
    editor, kept, *_ = space_app.on_face(str(two_faces), None, 1)
    used: list[int] = []

    def reconstruct(pipeline: object, image: object, mask: object, settings: Any, *_: Any) -> None:
        used.append(settings.face_index)
        raise RuntimeError("stop here")

    monkeypatch.setattr(logic, "get_pipeline", lambda: None)
    monkeypatch.setattr(logic, "reconstruct", reconstruct)
    run = (editor, None, 2, 0.5, 3.0, "test", 0, kept, 1)
    for photo in (two_faces, EXAMPLE):  # the picker still shows the group photo's choice
        with pytest.raises(gr.Error, match="stop here"):
            space_app.on_reconstruct(str(photo), *run)
    assert used == [1, 0]
    with pytest.raises(gr.Error, match="stop here"):  # the API: no kept mask
        space_app.on_reconstruct(str(two_faces), None, None, 2, 0.5, 3.0, "test", 0, None, 1)
    assert used[-1] == 1
    fns = space_app.demo.fns.values()
    face = _block("face")
    assert [f.fn for f in fns if (face._id, "input") in f.targets] == [space_app.on_face]
    run_fn = next(f for f in fns if f.fn is space_app.on_reconstruct)
    assert run_fn.inputs[-1] is face


def test_the_api_documents_the_face_as_the_whole_number_it_takes() -> None:
    # Gradio describes a Radio's choices as strings: the API page's snippet passed face="0",
    # which the Radio refused ("Value: '0' ... is not in the list of choices")
    parameters = space_app.demo.get_api_info()["named_endpoints"]["/reconstruct"]["parameters"]
    face = next(parameter for parameter in parameters if parameter["parameter_name"] == "face")
    assert face["python_type"]["type"] == "int"
    assert face["example_input"] == face["parameter_default"] == 0
    assert "0 = the largest" in face["python_type"]["description"]
    picker = _block("face")
    assert picker.preprocess(face["example_input"]) == 0
    assert type(picker)(**picker.constructor_args).get_block_name() == "radio"


def test_the_api_leaves_the_mask_to_the_app_unless_one_is_given() -> None:
    # the mask editor and the mask file were required API parameters: a caller had to pass
    # mask_editor=None, mask_file=None for the mask the app finds itself anyway
    parameters = space_app.demo.get_api_info()["named_endpoints"]["/reconstruct"]["parameters"]
    optional = {p["parameter_name"]: p["parameter_default"] for p in parameters}
    assert {p["parameter_name"] for p in parameters if not p["parameter_has_default"]} == {"photo"}
    assert optional["mask_editor"] is None and optional["mask_file"] is None
    settings = logic.DEFAULT_SETTINGS
    assert [optional[name] for name in ("n", "k", "n_sigma", "seed")] == [
        settings.n,
        settings.k,
        settings.n_sigma,
        settings.seed,
    ]


def test_reconstruct_is_disabled_while_its_run_lasts() -> None:
    # pressed again during a run, it queued the same run once more; and a run that failed
    # (a bad setting, no face) left it disabled for good: it was enabled again by a ``then``,
    # which Gradio's browser side starts only after a success
    fns = space_app.demo.fns
    started = next(f for f in fns.values() if f.fn is space_app.run_starts)
    button = started.outputs[-1]
    assert (button._id, "click") in started.targets
    assert space_app.run_starts()[-1] == gr.update(value=space_app.RUNNING_LABEL, interactive=False)
    ended = [f for f in fns.values() if f.fn is space_app.run_ends]
    assert all(fns[f.trigger_after].fn is space_app.on_reconstruct for f in ended)
    assert sorted((f.trigger_only_on_success, f.trigger_only_on_failure) for f in ended) == [
        (False, True),
        (True, False),
    ]
    assert all(f.outputs == [button] for f in ended)
    assert space_app.run_ends() == gr.update(value=space_app.RUN_LABEL, interactive=True)
