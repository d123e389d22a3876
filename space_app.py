"""d3dface's Gradio app (also the Hugging Face Space): photo -> mask -> N diverse 3D faces.

    python space_app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_PORT / _NAME to change)

UI only: components, events and examples. The work is done by :mod:`d3dface.app_logic`
(validation, masks, running the pipeline into temporary folders, zips, interpolation).
The main event is also an API endpoint, ``/reconstruct`` (see README.md, "App").
"""

from __future__ import annotations

import logging
import os
from abc import ABCMeta
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.component_meta import ComponentMeta

from d3dface import app_logic as logic
from d3dface.perception.landmarks import DEFAULT_MAX_FACES, ChosenFace, NoFaceError

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
EXAMPLE_PHOTOS = [
    EXAMPLES / name
    for name in (
        "obama_face_mask.jpg",
        "biden_sunglasses.jpg",
        "astronaut_hand.jpg",
        "render_scarf.jpg",
    )
]
VIEWER_COLUMNS = 4
VIEWER_CLEAR = (0.94, 0.95, 0.97, 1.0)
NARROW_VIEW_MIN_WIDTH = 280
"""Least width (px) of a result viewer, the download box and the metrics: on a phone they take
a row each instead of sharing one (on a desktop they still sit side by side)."""
STORE = logic.RunStore(capacity=8)
log = logging.getLogger("d3dface.app")

INTRO = """
# d3dface: diverse 3D faces from one partly hidden face

Give it one photo of a face with something in front of it (a mask, sunglasses, a scarf, a
hand). It fits a 3D face to the part it can see and then generates **several different,
plausible 3D faces**: they all match the visible part and differ where the face is hidden.
After *Diverse3DFace* (Dey & Boddeti, CVPR 2022).

**1.** Upload a photo or click an example. **2.** Check the mask: red marks what hides the
face; paint red to add to it, green to remove from it. **3.** Press **Reconstruct**. Then turn
the faces in 3D, see where they differ, blend two of them, and download everything.
"""

MASK_HINT = (
    "Upload a photo (or click an example): its occlusion mask appears here in red. Paint red "
    "where the face is hidden, green where it is visible."
)

SETTINGS_HELP = """
The samples are pushed apart by a determinantal point process (DPP) over the hidden part of
the face, while each sample's latent code is kept plausible.

- **k** is the DPP's similarity scale: two samples count as alike while their distance is
  small compared with (their median distance) / k, and alike samples are pushed apart. Both
  very small and very large k weaken the push: on an example photo, k = 0.1 and k = 2 gave
  35-50% less spread in the hidden part than the paper's k = 0.5.
- **n_sigma** bounds realism: a code is penalised only when its squared length leaves the
  prior's typical set by more than n_sigma standard deviations. Larger allows more diverse,
  less typical faces; 0 keeps them most typical. It matters only when the DPP pushes codes
  far: in the benchmark (N = 8, 100 iterations) the codes stayed well inside the bound and
  n_sigma from 1 to 5 gave identical samples.
- **Speed / quality** sets the iterations of both stages; **seed** makes a run repeatable.
"""


CSS = """
/* a pop-up's message (logic.popup_text): its title on the first line, in bold */
.toast-message-text { white-space: pre-line; }
.toast-message-text::first-line { font-weight: 600; }
/* the mask editor without a picture (Gradio dashes its border then): a hint in place of a
   blank canvas, its tools (with nothing to work on) and Gradio's "select the draw tool" */
#mask-editor[style*="border-style: dashed"] :is(.pixi-target, .empty, .toolbar-wrap, .top-panel) {
  visibility: hidden;
}
#mask-editor[style*="border-style: dashed"] .image-container::before {
  content: "The photo and its mask appear here";
  color: var(--body-text-color-subdued);
}
/* the thumbnails take the height they need: no blank box below one row of them, and every
   row on the page (not in a box of 55% of the screen's height, scrolling inside the page) */
#thumbnails .grid-wrap { min-height: 0; max-height: none; }
/* and start below the gallery's label and its "Download All" button, which Gradio floats at
   the top corners, over the first and the last thumbnail of the top row */
#thumbnails .grid-container { margin-top: 32px; }
/* phone-width screens (Gradio stacks its columns below 640 px) */
@media (max-width: 640px) {
  /* two thumbnail columns, not four of Gradio's 100 px minimum running off the screen */
  #thumbnails .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  /* the label above the thumbnails, in the flow, instead of over them */
  #thumbnails > label { position: static; }
  /* labels that float over a picture wrap before its buttons instead of running under them */
  #photo > label, #picked > label, #spread > label, #blended > label,
  .sample-viewer > label { max-width: calc(100% - 64px); }
  #overlay > label { max-width: calc(100% - 96px); }
  #mask-editor > label { max-width: calc(100% - 196px); }
}
"""
"""The app's own styles (given to ``launch``): the pop-ups' titles, the empty mask editor,
the thumbnails' box, and the layout on phone-width screens (desktop widths are left as Gradio
lays them out)."""


class _WithoutStub(ComponentMeta):
    """Gradio's component metaclass less its last step, which writes a ``.pyi`` stub of a new
    component class beside its module (here: a copy of this file, left in the repository).
    Only for subclasses that define no ``__init__`` and no ``EVENTS``, the other steps'
    work."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> type:
        if "__init__" in attrs or "EVENTS" in attrs:
            raise TypeError(f"{name}: a component class with its own __init__ or EVENTS")
        return ABCMeta.__new__(mcs, name, bases, attrs)


class PhotoInput(gr.Image, metaclass=_WithoutStub):
    """``gr.Image`` that answers a file that is not an image with a short ``gr.Error``,
    instead of Gradio's processing error with its internal details and the server's paths.

    A class, not a patch of one instance's ``preprocess``: Gradio rebuilds a component from
    its constructor arguments whenever an event updates it (``gr.skip()`` included, and an
    example's click), which dropped such a patch after the first photo."""

    is_template = True
    """The browser shows it with Gradio's own Image component (see ``get_block_name``)."""

    def preprocess(self, payload: Any) -> Any:
        """Gradio's ``Image.preprocess``, its failures as a :data:`PHOTO_NOT_USABLE` pop-up."""
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as exc:
            raise app_error(
                "That file is not an image that can be read; use a JPEG or PNG photo.",
                title=PHOTO_NOT_USABLE,
                duration=10,
            ) from exc


class FacePicker(gr.Radio, metaclass=_WithoutStub):
    """``gr.Radio`` of the face indices, described to API clients as the whole number it
    takes. Gradio describes every Radio's choices as strings: the API page's snippet passed
    ``face="0"``, which the Radio refused ("Value: '0' ... is not in the list of choices")."""

    is_template = True
    """The browser shows it with Gradio's own Radio component (see ``get_block_name``)."""

    def api_info(self) -> dict[str, Any]:
        """The JSON schema of the value: a whole number, 0 = the largest face (its
        ``additional_description`` is shown with the parameter)."""
        return {
            "type": "integer",
            "title": "Face",
            "additional_description": "Which face of the photo: 0 = the largest, 1 = the 2nd "
            "largest, ...",
        }


class SettingSlider(gr.Slider, metaclass=_WithoutStub):
    """``gr.Slider`` whose range check names the setting, in a :data:`SETTING_NOT_VALID`
    pop-up: Gradio's own said only "Value 13 is greater than maximum value 12." (the browser
    keeps a slider in its range; an API call can leave it)."""

    is_template = True
    """The browser shows it with Gradio's own Slider component (see ``get_block_name``)."""

    def preprocess(self, payload: Any) -> Any:
        """Gradio's ``Slider.preprocess``; a value out of range (or not a number) is refused
        naming the setting: its label up to a colon ("k: DPP similarity scale" -> "k")."""
        try:
            return super().preprocess(payload)
        except (gr.Error, TypeError, ValueError) as exc:
            name = str(self.label).partition(":")[0]
            raise app_error(
                f"For {name}, use a number from {self.minimum:g} to {self.maximum:g} (got "
                f"{payload!r}).",
                title=SETTING_NOT_VALID,
            ) from exc


PHOTO_LABEL = (
    f"Photo of a face ({', '.join(logic.PHOTO_FORMATS)}; "
    f"up to {logic.MAX_FILE_SIZE.upper().replace('MB', ' MB')})"
)
"""The Photo input's label: the formats named to users and the largest upload."""
PHOTO_NOT_USABLE = "Photo not usable"
"""Title of the error pop-ups of a photo that cannot be used (none, not an image, ...)."""
NO_FACE = "No face found"
"""Title of the pop-ups of a photo without a face, whatever step found that."""
SETTING_NOT_VALID = "Setting not valid"
"""Title of the error pop-ups of a setting out of range (N, k, n_sigma, seed, face)."""


def app_error(message: str, title: str, duration: float | None = None) -> gr.Error:
    """An error pop-up titled with what failed (e.g. "Photo not usable"); it stays until
    closed unless a ``duration`` (seconds) is given. See :func:`logic.popup_text`."""
    return gr.Error(
        logic.popup_text(title, message), title=title, duration=duration, print_exception=False
    )


@contextmanager
def user_errors(title: str) -> Iterator[None]:
    """Show a user error (ValueError: bad image, no face, bad setting) as a readable message,
    and anything unexpected as a short one; never a traceback in the browser. ``title`` says
    what failed in the guarded step (a photo without a face is titled :data:`NO_FACE`)."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as exc:
        raise app_error(str(exc), NO_FACE if isinstance(exc, NoFaceError) else title) from exc
    except Exception as exc:
        log.exception("unexpected error in the app")
        raise app_error(
            f"Something went wrong ({type(exc).__name__}: {exc}). Try another photo or "
            "smaller settings.",
            title,
        ) from exc


def warn(message: str, title: str) -> None:
    """A warning pop-up titled ``title`` (see :func:`logic.popup_text`)."""
    gr.Warning(logic.popup_text(title, message), title=title)


# ------------------------------------------------------------------------------ event handlers
def show_mask(
    photo: Any, mask: Any, face: ChosenFace | None = None
) -> tuple[dict[str, Any], logic.ShownMask]:
    """The mask editor's value (the photo with ``mask`` drawn in, and ``face`` boxed when the
    photo has several) and the mask to keep, with the photo it belongs to."""
    return logic.editor_value(photo, mask, face), logic.ShownMask.of(photo, mask)


def face_picker(face: ChosenFace | None) -> dict[str, Any]:
    """The Face picker for the photo's chosen face: shown only when the photo has several."""
    found = 0 if face is None else face.found
    return gr.update(
        choices=logic.face_choices(max(found, 1)),
        value=0 if face is None else face.index,
        visible=found > 1,
    )


def with_face(status: str, face: ChosenFace | None) -> str:
    """A mask status, and which face it is of when the photo has several."""
    which = logic.face_status(face)
    return f"{status}\n\n{which}" if which else status


def example_mask(photo: str, image: np.ndarray) -> Path | None:
    """The exact mask shipped with an example photo (``examples/NAME_mask.png``) when the
    photo is one of them, else None: named like it (Gradio hands over a copy with the same
    file name) and with its pixels (``image``, the loaded photo). By the name alone, a photo
    of one's own named like an example got that example's mask, or a refusal of it."""
    example = EXAMPLES / Path(photo).name
    mask = EXAMPLES / f"{example.stem}_mask.png"
    if example not in EXAMPLE_PHOTOS or not mask.is_file():
        return None
    return mask if np.array_equal(logic.load_photo(example), image) else None


MASK_CHECK = "Check it: paint red where the face is hidden, green where it is visible."
BLEND_HEADING = "**Blend two samples** (their latent codes, decoded live)"
BLEND_NEEDS_TWO = (
    "**Blend two samples:** this run made one sample, and a blend needs two. Set N to 2 or "
    "more and press **Reconstruct** to blend them."
)
"""The heading of the blend controls, in place of them after a run of one sample."""


def photo_copies() -> Path:
    """The folder of the PNG copies of photos the browser cannot show (in the app's
    temporary folder)."""
    return STORE.root / "photos"


def on_photo(
    photo: str | None,
    mask_file: str | None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[Any, Any, str, Any, Any, Any]:
    """A new photo (an upload, a paste, a webcam shot, an example's click; None when the
    photo is removed): its mask in the editor (see :func:`photo_mask`), of its largest face.
    Returns the editor, kept mask, status, mask file, photo and Face picker: a photo the
    browser cannot show (TIFF, BMP, ...) is replaced in the Photo box by a PNG copy of the
    pixels the app uses, else the box is left as it is; the picker is shown for a photo with
    several faces.

    Called on the Photo box's ``input`` (once per upload; its ``change`` comes two or three
    times, so each upload found its mask as often) and after an example's click."""
    if not photo:
        return None, None, MASK_HINT, gr.skip(), gr.skip(), face_picker(None)
    with user_errors(PHOTO_NOT_USABLE):
        image = logic.load_photo(photo)  # errors name the upload, not its copy
        shown = gr.skip()
        if not logic.shows_in_browser(photo):
            shown = str(logic.browser_copy(image, photo_copies()))
    *mask_outputs, face = photo_mask(image, photo, mask_file, 0, progress)
    return *mask_outputs, shown, face_picker(face)


PHOTO_FAILED = (
    "**No mask:** that photo could not be used (the pop-up says why). Upload another photo or "
    "click an example."
)
"""The mask status after :func:`on_photo` failed."""


def on_photo_failed() -> tuple[Any, ...]:
    """:func:`on_photo` failed (a file that is not an image, ...; its pop-up says why): the
    editor, kept mask and Face picker of the earlier photo are cleared, as are its results,
    so that no mask or result of another photo is shown with this one. Returns the editor,
    kept mask, status, Face picker, and the results, every-sample section and summary."""
    return None, None, PHOTO_FAILED, face_picker(None), *results_view(None, None)


def on_face(
    photo: str | None,
    mask_file: str | None,
    face_index: Any,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[Any, Any, str, Any]:
    """Another face of the photo was picked: the mask for it (see :func:`photo_mask`).
    Returns the editor, kept mask, status and mask file."""
    if not photo:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    with user_errors(PHOTO_NOT_USABLE):
        image = logic.load_photo(photo)
    *mask_outputs, _ = photo_mask(image, photo, mask_file, int(face_index or 0), progress)
    return tuple(mask_outputs)


def photo_mask(
    image: Any, photo: str, mask_file: str | None, face_index: int, progress: Any
) -> tuple[Any, Any, str, Any, ChosenFace | None]:
    """The mask of one face of a loaded photo: a mask file given (before the photo) when it
    fits the photo; for an example photo, the exact mask shipped with it; otherwise the
    automatic mask. Returns the editor value, kept mask, status, mask file (cleared when
    refused) and the face (None when none is found)."""
    # the face is found once: for the mask shown, once it is known which (a mask file that
    # fits, the example's mask); the automatic mask finds its own
    refused = ""
    if mask_file:
        try:
            mask = logic.load_mask_file(mask_file, image.shape)
        except ValueError as exc:  # includes ImageError
            refused = f"{refused_file(exc)}\n\n"
        else:
            face = logic.chosen_face(image, face_index)
            return *show_mask_file(image, mask, face), gr.skip(), face
    file_update = None if refused else gr.skip()  # a refused file is cleared
    shipped = example_mask(photo, image)
    if shipped is not None:
        face = logic.chosen_face(image, face_index)
        mask = logic.load_mask_file(shipped, image.shape)
        status = (
            f"**Mask of the example** (the occluder as drawn): {100 * mask.mean():.1f}% of the "
            f"photo hidden. {MASK_CHECK} *Find the mask again* shows the automatic mask."
        )
        return *show_mask(image, mask, face), refused + with_face(status, face), file_update, face
    editor, kept, status, face = find_mask(image, progress, face_index)
    return editor, kept, refused + status, file_update, face


def on_find_mask(
    photo: str | None,
    face_index: Any = 0,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[Any, Any, str, Any]:
    """ "Find the mask again": the automatic mask of the picked face, whatever file or example
    mask was shown."""
    with user_errors(PHOTO_NOT_USABLE):
        image = logic.load_photo(photo)
    *found, _ = find_mask(image, progress, int(face_index or 0))
    return *found, None


def find_mask(
    image: Any, progress: Any, face_index: int = 0
) -> tuple[Any, Any, str, ChosenFace | None]:
    """The automatic mask of a loaded photo's ``face_index``-th largest face: editor value,
    kept mask, status and the face (None when none is found)."""
    with user_errors("Mask not found"):
        progress(0.1, desc="finding the face and what hides it")
        try:
            mask, text, notes, face = logic.automatic_mask(logic.get_pipeline(), image, face_index)
        except NoFaceError as exc:  # show the photo, say why
            warn(str(exc), title=NO_FACE)
            return *show_mask(image, None), f"**No face found.** {exc}", None
    status = with_face(f"**Mask {text}.** {MASK_CHECK} (The eraser undoes strokes.)", face)
    if notes:
        status += f"\n\n<small>{'; '.join(notes)}</small>"
    return *show_mask(image, mask, face), status, face


def on_mask_file(
    photo: str | None, mask_file: str | None, face_index: Any = 0
) -> tuple[Any, Any, str, Any]:
    """A mask file was given: show it in the editor (it can still be painted on). Without a
    photo yet, it waits for one; one that does not fit is refused and cleared."""
    if not mask_file:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    if not photo:
        status = "**Mask file received:** it is used when you upload its photo."
        return gr.skip(), gr.skip(), status, gr.skip()
    with user_errors(PHOTO_NOT_USABLE):
        image = logic.load_photo(photo)
    try:
        mask = logic.load_mask_file(mask_file, image.shape)
    except ValueError as exc:  # includes ImageError
        warn(str(exc), title="Mask file not used")
        return gr.skip(), gr.skip(), refused_file(exc), None
    face = logic.chosen_face(image, int(face_index or 0))
    return *show_mask_file(image, mask, face), gr.skip()


def show_mask_file(
    image: Any, mask: np.ndarray, face: ChosenFace | None = None
) -> tuple[dict[str, Any], Any, str]:
    """The mask of the user's file (see :func:`logic.load_mask_file`) over the loaded photo
    (``face`` boxed when the photo has several): editor value, kept mask, status."""
    share = 100 * mask.mean()
    status = f"**Mask from your file:** {share:.1f}% of the photo hidden. {MASK_CHECK}"
    return *show_mask(image, mask, face), with_face(status, face)


def refused_file(error: Exception) -> str:
    """The status line of a mask file that was not used, and why."""
    return f"**Your mask file was not used:** {error}"


def on_clear_mask(photo: str | None, face_index: Any = 0) -> tuple[Any, Any, str]:
    """Nothing hidden: an empty mask over the photo (the picked face boxed). On "Clear the
    mask" and on the editor's own bin, which empties the editor, photo included."""
    with user_errors(PHOTO_NOT_USABLE):
        image = logic.load_photo(photo)
    face = logic.chosen_face(image, int(face_index or 0))
    status = with_face("**Mask cleared:** paint what hides the face in red.", face)
    return *show_mask(image, None, face), status


def on_reconstruct(
    photo: str | None,
    mask_editor: dict[str, Any] | None = None,
    mask_file: str | None = None,
    n: float = logic.DEFAULT_SETTINGS.n,
    k: float = logic.DEFAULT_SETTINGS.k,
    n_sigma: float = logic.DEFAULT_SETTINGS.n_sigma,
    preset: str = logic.DEFAULT_SETTINGS.preset,
    seed: float = logic.DEFAULT_SETTINGS.seed,
    shown_mask: logic.ShownMask | None = None,
    face: Any = 0,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[str, str, list[tuple[str, str]], str, str, str, dict[str, Any]]:
    """Run the whole method on the picked face (0 = the largest; the largest while the Face
    picker still shows an earlier photo's). Mask: the one shown in the editor with the user's
    strokes (when the editor holds this photo, not yet an earlier one), else the mask file,
    else found automatically. Returns the run id, summary, thumbnails, spread mesh, overlay,
    zip and metrics.

    The ``None`` defaults of the mask editor and the mask file make them optional parameters
    of the ``/reconstruct`` API (Gradio marks an input optional when its component has a
    value or its parameter defaults to None); the settings' API defaults are their
    controls' values."""
    with user_errors(PHOTO_NOT_USABLE):
        image = logic.load_photo(photo)
    if shown_mask is not None and not shown_mask.is_of(image):
        face = 0
    with user_errors(SETTING_NOT_VALID):
        settings = logic.validate_settings(n, k, n_sigma, preset, seed, face)
    with user_errors("Mask not usable"):
        mask = logic.editor_mask(mask_editor, image, shown_mask)
        if mask is None and mask_file:
            mask = logic.load_mask_file(mask_file, image.shape)
    with user_errors("Reconstruction failed"):
        progress(0.0, desc="loading the models")
        out = logic.reconstruct(logic.get_pipeline(), image, mask, settings, STORE, progress)
    thumbnails = [(str(path), f"sample {i}") for i, path in enumerate(out.thumbnails)]
    return (
        out.run_id,
        logic.summary_markdown(out.summary),
        thumbnails,
        str(out.spread_glb),
        str(out.overlay),
        str(out.zip_path),
        out.summary,
    )


RUN_LABEL = "Reconstruct"
RUNNING_LABEL = "Reconstructing…"


def run_starts() -> tuple[Any, Any, Any]:
    """Reconstruct was pressed: the (empty) result components are shown first (Model3D
    viewers only load values they get once on the page), and the button is disabled until
    the run ends, so a second press does not queue the same run again."""
    shown = gr.update(visible=True)
    return shown, shown, gr.update(value=RUNNING_LABEL, interactive=False)


def run_ends() -> Any:
    """The run ended (done or failed): the button works again."""
    return gr.update(value=RUN_LABEL, interactive=True)


RESULTS_HINT = (
    "Results appear here after you press **Reconstruct**: a thumbnail and a 3D viewer per "
    "sample, a map of where they differ, a slider that blends two of them, the fit over your "
    "photo, metrics, and a zip of every file. About half a minute on a CPU with the balanced "
    "preset."
)
"""The summary's text before a run, and again once a new photo replaces the run's."""


def results_view(photo: str | None, run_id: str | None) -> tuple[Any, Any, Any]:
    """The results, the every-sample section and the summary for the photo in the Photo box:
    the run's results are shown while they are of this photo; any other photo (none, one
    that cannot be read) hides them and puts :data:`RESULTS_HINT` in place of their summary.

    On a new photo (with :func:`on_photo`) and at the end of a run (a failed one included:
    the empty result components shown for it give way to those of the photo's earlier run, if
    any); a run that ends after its photo was replaced is not shown."""
    try:
        same = photo is not None and logic.run_photo_is(STORE, run_id, logic.load_photo(photo))
    except ValueError:  # a photo that cannot be read: on_photo says why
        same = False
    if same:
        shown = gr.update(visible=True)
        return shown, shown, gr.skip()
    hidden = gr.update(visible=False)
    return hidden, hidden, RESULTS_HINT


def on_result(run_id: str | None) -> list[Any]:
    """After a run: one 3D viewer per sample, the picked sample, the interpolation heading,
    controls and blend (with one sample the heading says why there is nothing to blend, and
    the controls are hidden)."""
    with user_errors("Results not shown"):
        paths = logic.sample_glbs(STORE, run_id)
        can_blend = len(paths) > 1
        middle = str(logic.interpolation_mesh(STORE, run_id, 0, 1, 0.5)) if can_blend else None
    viewers = [
        gr.update(value=str(paths[i]), visible=True, label=f"sample {i}")
        if i < len(paths)
        else gr.update(value=None, visible="hidden")
        for i in range(logic.MAX_SAMPLE_VIEWERS)
    ]
    choices = [(f"sample {i}", i) for i in range(len(paths))]
    return [
        *viewers,
        gr.update(value=str(paths[0]), label="sample 0"),
        gr.update(choices=choices, value=0),
        gr.update(choices=choices, value=min(1, len(paths) - 1)),
        gr.update(value=0.5),
        middle,
        BLEND_HEADING if can_blend else BLEND_NEEDS_TWO,
        gr.update(visible=True if can_blend else "hidden"),
    ]


def on_pick(
    run_id: str | None, start: Any, end: Any, t: float, event: gr.SelectData
) -> tuple[Any, Any, Any, Any]:
    """A thumbnail was picked: show that sample large and blend from it. When it is the "to"
    sample, "to" becomes the earlier "from" (the two swap), so the blend stays between two
    samples. A run of one sample has no blend, so its hidden blend viewer is left as it is.
    Returns the picked viewer, "from", "to" and the blend."""
    with user_errors("Sample not shown"):
        paths = logic.sample_glbs(STORE, run_id)
        index = int(event.index)
        if end is not None and start is not None and int(end) == index:
            end = start
        blended = (
            str(logic.interpolation_mesh(STORE, run_id, index, end if end is not None else 0, t))
            if len(paths) > 1
            else gr.update()
        )
    return (
        gr.update(value=str(paths[index]), label=f"sample {index}"),
        gr.update(value=index),
        gr.update(value=end),
        blended,
    )


def on_interpolate(run_id: str | None, start: Any, end: Any, t: float) -> str | None:
    """Decode the blend of two samples' latent codes (t = 0: start, t = 1: end)."""
    if run_id is None or start is None or end is None:
        return None
    with user_errors("Blend failed"):
        return str(logic.interpolation_mesh(STORE, run_id, start, end, t))


# ------------------------------------------------------------------------------ layout
def build_demo() -> gr.Blocks:
    """The app's Blocks (not launched)."""
    preset_choices = [(logic.PRESETS[name].label, name) for name in logic.listed_presets()]
    with gr.Blocks(title="d3dface: diverse 3D faces", delete_cache=(1800, 3600)) as demo:
        run_state = gr.State(None)
        mask_state = gr.State(None)  # the logic.ShownMask drawn into the editor's picture
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(min_width=360):
                gr.Markdown("### 1 · Photo")
                photo = PhotoInput(
                    label=PHOTO_LABEL,
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard", "webcam"],
                    height=420,
                    elem_id="photo",
                )
                examples = gr.Examples(
                    examples=[[str(path)] for path in EXAMPLE_PHOTOS if path.is_file()],
                    inputs=[photo],
                    label="Examples (public-domain photos and a face-model render, with "
                    "occluders drawn on): click one",
                    examples_per_page=8,
                    cache_examples=False,
                )
            with gr.Column(min_width=360):
                gr.Markdown("### 2 · Occlusion mask")
                mask_status = gr.Markdown(
                    MASK_HINT,
                    elem_id="mask-status",
                )
                # every face the detector can report: the API may pick any of them (Gradio
                # checks a value against these, not a session's update of them)
                face = FacePicker(
                    logic.face_choices(DEFAULT_MAX_FACES),
                    value=0,
                    label="Face (this photo has several; largest first)",
                    visible=False,
                    elem_id="face",
                )
                mask_editor = gr.ImageEditor(
                    label="Mask (red = hidden)",
                    type="numpy",
                    image_mode="RGBA",
                    sources=(),
                    transforms=(),
                    layers=False,
                    brush=gr.Brush(
                        colors=[(logic.BRUSH_HIDE, 0.6), (logic.BRUSH_SHOW, 0.6)],
                        default_color=(logic.BRUSH_HIDE, 0.6),
                        default_size=18,
                        color_mode="fixed",
                    ),
                    eraser=gr.Eraser(default_size=18),
                    format="png",
                    height=420,
                    elem_id="mask-editor",
                )
                with gr.Row():
                    auto_button = gr.Button("Find the mask again", size="sm")
                    clear_button = gr.Button("Clear the mask", size="sm")
                with gr.Accordion("Use a mask file instead", open=False):
                    mask_file = gr.File(
                        label="Mask image, same photo (white = hidden)",
                        file_types=["image"],
                        type="filepath",
                        elem_id="mask-file",
                    )

        gr.Markdown("### 3 · Settings and run")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                n = SettingSlider(
                    1,
                    logic.MAX_SAMPLES,
                    value=logic.DEFAULT_SETTINGS.n,
                    step=1,
                    label="Number of samples N",
                    elem_id="n-samples",
                    info="How many different 3D faces to generate.",
                )
                k = SettingSlider(
                    0.05,
                    5.0,
                    value=logic.DEFAULT_SETTINGS.k,
                    step=0.05,
                    label="k: DPP similarity scale",
                    elem_id="k",
                    info="How far apart two samples must be to count as different; "
                    "0.5 (the paper's) spreads them most.",
                )
                n_sigma = SettingSlider(
                    0.0,
                    10.0,
                    value=logic.DEFAULT_SETTINGS.n_sigma,
                    step=0.5,
                    label="n_sigma: how far from typical a sample may go",
                    elem_id="n-sigma",
                    info="A bound on how atypical a sample may get. At these presets the "
                    "samples stay inside it, so it rarely changes the result (see below).",
                )
                with gr.Accordion("What do k and n_sigma do?", open=False):
                    gr.Markdown(SETTINGS_HELP)
            with gr.Column(scale=2, min_width=300):
                preset = gr.Radio(
                    preset_choices,
                    value=logic.default_preset(),
                    label="Speed / quality",
                    elem_id="preset",
                )
                # no ``minimum``: Gradio's own range check would answer a negative seed with
                # "Value -3 is less than minimum value 0." without naming the seed;
                # logic.validate_settings says what is wrong
                seed = gr.Number(
                    value=logic.DEFAULT_SETTINGS.seed, precision=0, label="Seed", elem_id="seed"
                )
                run_button = gr.Button(RUN_LABEL, variant="primary", size="lg")
                gr.Markdown(
                    f"<small>{logic.device_note()} One run at a time; others wait in the "
                    "queue.</small>"
                )

        gr.Markdown("### Results")
        summary = gr.Markdown(
            RESULTS_HINT,
            label="summary",
            elem_id="summary",
        )
        with gr.Column(visible=False, elem_id="results") as results:
            gallery = gr.Gallery(
                label="Samples, front and turned (click one to view it large below)",
                columns=4,
                fit_columns=False,  # fewer samples than columns: keep the thumbnails' size
                height="auto",
                allow_preview=False,
                object_fit="contain",
                elem_id="thumbnails",
            )
            with gr.Row():
                selected = gr.Model3D(
                    label="picked sample (drag to turn)",
                    clear_color=VIEWER_CLEAR,
                    height=340,
                    min_width=NARROW_VIEW_MIN_WIDTH,
                    elem_id="picked",
                )
                spread = gr.Model3D(
                    label="spread: darker = samples differ more",
                    clear_color=VIEWER_CLEAR,
                    height=340,
                    min_width=NARROW_VIEW_MIN_WIDTH,
                    elem_id="spread",
                )
                overlay = gr.Image(
                    label="fit over the photo, red = hidden",
                    type="filepath",
                    interactive=False,
                    height=340,
                    min_width=NARROW_VIEW_MIN_WIDTH,
                    elem_id="overlay",
                )
            with gr.Group():
                blend_heading = gr.Markdown(BLEND_HEADING, elem_id="blend-heading")
                # "hidden", not invisible, after a one-sample run: the blend viewer stays on
                # the page, so it loads the next run's blend
                with gr.Row(equal_height=False, elem_id="blend-controls") as blend_controls:
                    with gr.Column(min_width=300):
                        start = gr.Dropdown(label="from", choices=[], elem_id="blend-from")
                        end = gr.Dropdown(label="to", choices=[], elem_id="blend-to")
                        blend = gr.Slider(
                            0.0,
                            1.0,
                            value=0.5,
                            step=0.05,
                            label="blend (0 = from, 1 = to)",
                            elem_id="blend",
                        )
                    with gr.Column(scale=2):
                        blended = gr.Model3D(
                            label="blend", clear_color=VIEWER_CLEAR, height=340, elem_id="blended"
                        )
            with gr.Row(equal_height=False):
                download = gr.File(
                    label="Download everything (GLB, OBJ, PLY meshes, mask, pictures, "
                    "metrics.json)",
                    interactive=False,
                    min_width=NARROW_VIEW_MIN_WIDTH,
                    elem_id="download",
                )
                with (
                    gr.Column(min_width=NARROW_VIEW_MIN_WIDTH),
                    gr.Accordion("metrics.json", open=False),
                ):
                    metrics = gr.JSON(label="metrics.json")

        with gr.Column(visible=False) as every_sample:
            gr.Markdown(
                f"### Every sample in 3D (drag to turn, scroll to zoom)\n\nThe first "
                f"{logic.MAX_SAMPLE_VIEWERS}; click a thumbnail above to view any sample."
            )
            viewers = []
            for row_start in range(0, logic.MAX_SAMPLE_VIEWERS, VIEWER_COLUMNS):
                with gr.Row():
                    for index in range(row_start, row_start + VIEWER_COLUMNS):
                        viewers.append(
                            gr.Model3D(
                                label=f"sample {index}",
                                clear_color=VIEWER_CLEAR,
                                height=280,
                                visible="hidden",
                                elem_classes=["sample-viewer"],
                            )
                        )

        # ---- events
        mask_outputs = [mask_editor, mask_state, mask_status, mask_file]
        # no event shows its progress on the mask editor: Gradio applies each progress update
        # of the editor only after reading (uploading) the editor's picture, so updates can land
        # out of order, and a quick event that changed the picture (a photo removed) could end
        # on "processing" for good
        mask_progress = [mask_status, mask_file]
        results_outputs = [results, every_sample, summary]
        # the browser hands the first listener of the Photo box's input event the box's value
        # as it was before a removal when the photo came from an example (Gradio waits for the
        # removal to land only after a real upload): on_photo showed the example's mask again.
        # A first listener that does nothing, in the browser only, lets the ones below read
        # the box after the removal
        photo.input(None, None, None, js="() => []", queue=False, api_visibility="private")
        for new_photo in (photo.input, examples.load_input_event.then):
            new_photo(
                on_photo,
                [photo, mask_file],
                [*mask_outputs, photo, face],
                api_visibility="private",
                show_progress_on=[*mask_progress, photo],
                # a photo given (or removed) while a mask is found: its turn comes after
                trigger_mode="always_last",
                concurrency_limit=2,
                concurrency_id="mask",
            ).failure(  # a file that is not an image: the earlier photo's mask is cleared
                on_photo_failed,
                None,
                [mask_editor, mask_state, mask_status, face, *results_outputs],
                api_visibility="private",
                show_progress_on=[mask_status],
                queue=False,
            )
            new_photo(  # the results shown may be of the earlier photo
                results_view,
                [photo, run_state],
                results_outputs,
                api_visibility="private",
                # a file that is not an image fails it (its Photo box refuses it): no "Error"
                # badge over the summary's hint (on_photo's pop-up says what is wrong)
                show_progress="hidden",
                queue=False,
            )
        # the mask's events after a photo's: their progress on the status line (see above)
        mask_event = {
            "api_visibility": "private",
            "show_progress_on": mask_progress,
            "concurrency_id": "mask",
        }
        face.input(on_face, [photo, mask_file, face], mask_outputs, **mask_event)
        auto_button.click(on_find_mask, [photo, face], mask_outputs, **mask_event)
        mask_file.upload(on_mask_file, [photo, mask_file, face], mask_outputs, **mask_event)
        # the editor's own bin ("Clear canvas") empties it, photo included: the photo comes
        # back with nothing hidden, as with "Clear the mask" (else the run found a mask itself
        # while the status still named the one shown)
        for cleared in (clear_button.click, mask_editor.clear):
            cleared(
                on_clear_mask,
                [photo, face],
                mask_outputs[:3],
                api_visibility="private",
                show_progress_on=[mask_status],
            )
        reconstruction = run_button.click(
            run_starts,
            None,
            [results, every_sample, run_button],
            api_visibility="private",
            queue=False,
        ).then(
            on_reconstruct,
            [photo, mask_editor, mask_file, n, k, n_sigma, preset, seed, mask_state, face],
            [run_state, summary, gallery, spread, overlay, download, metrics],
            api_name="reconstruct",
            scroll_to_output=True,
            show_progress_on=[summary],
            api_description="Photo (+ optional mask) -> N diverse 3D faces: summary, "
            "thumbnails, spread mesh, overlay, zip of all files, metrics.",
            concurrency_limit=1,
            concurrency_id="reconstruct",
        )
        reconstruction.success(  # hidden when the photo was replaced during the run
            results_view, [photo, run_state], results_outputs, api_visibility="private", queue=False
        ).then(
            on_result,
            [run_state],
            [*viewers, selected, start, end, blend, blended, blend_heading, blend_controls],
            api_visibility="private",
            concurrency_limit=4,
            concurrency_id="light",
        )
        reconstruction.failure(  # a failed run: the results of an earlier run of this photo
            results_view, [photo, run_state], results_outputs, api_visibility="private", queue=False
        )
        # not ``reconstruction.then``: Gradio's browser side starts a ``then`` only after a
        # success (a failed run, e.g. a bad setting, left the button disabled for good)
        for run_ended in (reconstruction.success, reconstruction.failure):
            run_ended(run_ends, None, [run_button], api_visibility="private", queue=False)
        gallery.select(
            on_pick,
            [run_state, start, end, blend],
            [selected, start, end, blended],
            api_visibility="private",
            concurrency_limit=4,
            concurrency_id="light",
        )
        blend_inputs = [run_state, start, end, blend]
        for trigger in (blend.input, start.input, end.input):
            trigger(
                on_interpolate,
                blend_inputs,
                [blended],
                api_visibility="private",
                trigger_mode="always_last",
                show_progress="hidden",
                concurrency_limit=4,
                concurrency_id="light",
            )
    return demo


demo = build_demo()


def launch(**kwargs: Any) -> tuple[Any, str, str]:
    """Queue (one reconstruction at a time) and launch ``demo`` with the app's settings;
    ``kwargs`` go to ``Blocks.launch`` (e.g. ``server_port``, ``prevent_thread_lock``)."""
    demo.queue(default_concurrency_limit=1, max_size=logic.QUEUE_SIZE)
    options: dict[str, Any] = {
        "max_file_size": logic.MAX_FILE_SIZE,
        "show_error": True,
        "theme": gr.themes.Soft(),
        "css": CSS,
        "footer_links": ["api", "gradio"],
    }
    options.update(kwargs)
    return demo.launch(**options)


def main() -> None:
    """``python space_app.py``: launch on ``$GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT``
    (default 127.0.0.1:7860)."""
    logging.basicConfig(level=os.environ.get("D3DFACE_LOG", "INFO"))
    launch()


if __name__ == "__main__":
    main()
