"""Logic behind the Gradio app (``space_app.py``), testable without a browser.

The app's UI file only lays out components and wires events; everything it does to data lives
here:

- settings: :data:`PRESETS` (speed / quality), :func:`validate_settings`;
- photos and masks: :func:`load_photo` (validated, scaled to at most :data:`MAX_PHOTO_SIDE`),
  :func:`shows_in_browser` / :func:`browser_copy` (a PNG copy of a photo the browser cannot
  show, e.g. TIFF), :func:`automatic_mask`, :func:`editor_value` (the photo with its mask
  tinted in, for ``gr.ImageEditor``), :class:`ShownMask` (that mask and the photo it was
  drawn for), :func:`mask_from_editor` (that mask + the user's red "hide" and green "show"
  strokes -> (H, W) bool), :func:`editor_mask` (the same, only for the photo it was drawn
  for), :func:`load_mask_file`;
- runs: :func:`reconstruct` runs the pipeline into a fresh temporary folder with generated
  names, renders a thumbnail per sample and zips every file; :class:`RunStore` keeps the last
  few results in memory (for live interpolation) and deletes the folders of older ones;
  :func:`run_photo_is` tells whether a run is of a photo, :func:`sample_glbs` lists a run's
  meshes, :func:`interpolation_mesh` decodes a blend of
  two samples' latent codes to a GLB;
- text: :func:`summary_markdown`, :func:`device_note`, :func:`sentence` and
  :func:`popup_text` (the app's messages).

Every user error is a ``ValueError`` (``ImageError``, ``NoFaceError`` included) whose message
says what to do; the app shows it as a ``gr.Error``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from PIL import Image

from d3dface.imageio import ImageError, ImageSource, downscale_to, load_image
from d3dface.latents_file import blend_stem
from d3dface.perception.landmarks import (
    DEFAULT_MAX_FACES,
    ChosenFace,
    choose_face,
    size_rank,
)
from d3dface.perception.occlusion_mask import read_mask_image
from d3dface.result_files import sample_mesh_path

if TYPE_CHECKING:
    from d3dface.pipeline import Diverse3DFace, FaceResult

__all__ = [
    "BROWSER_FORMATS",
    "BRUSH_HIDE",
    "BRUSH_SHOW",
    "DEFAULT_PRESET",
    "DEFAULT_SETTINGS",
    "FACE_OUTLINE_RGB",
    "HIDDEN_RGB",
    "MASK_ALPHA_THRESHOLD",
    "MAX_FILE_SIZE",
    "MAX_PHOTO_SIDE",
    "MAX_SAMPLES",
    "MAX_SAMPLE_VIEWERS",
    "MAX_SEED",
    "PHOTO_FORMATS",
    "PRESETS",
    "PRESET_ENV",
    "AppSettings",
    "Preset",
    "RunOutput",
    "RunStore",
    "ShownMask",
    "app_device",
    "automatic_mask",
    "browser_copy",
    "chosen_face",
    "default_preset",
    "device_note",
    "editor_mask",
    "editor_value",
    "face_choices",
    "face_status",
    "get_pipeline",
    "interpolation_mesh",
    "listed_presets",
    "load_mask_file",
    "load_photo",
    "mask_from_editor",
    "mask_preview",
    "painted_strokes",
    "photo_key",
    "popup_text",
    "reconstruct",
    "run_photo_is",
    "sample_glbs",
    "sentence",
    "shows_in_browser",
    "summary_markdown",
    "validate_settings",
]

MAX_FILE_SIZE = "25mb"
"""Largest upload the app accepts (Gradio's ``max_file_size``): a phone's full-size photo
(48-50 megapixels, 10-25 MB as JPEG) fits; it is scaled to :data:`MAX_PHOTO_SIDE` at once."""
QUEUE_SIZE = 32
"""Requests the queue holds while one reconstruction runs; more are refused ("queue full"),
so 20 simultaneous users are all served in turn (``python -m d3dface.bench load``)."""
MAX_PHOTO_SIDE = 1280
"""Photos are scaled down to this longer side (pixels) before anything else: the face model
is fitted on a crop of a few hundred pixels, and the mask editor stays responsive."""
MAX_SAMPLES = 12
"""Most completions per run in the app."""
MAX_SEED = 2**31 - 1
"""Largest seed a run accepts (seeds are whole numbers from 0)."""
MAX_SAMPLE_VIEWERS = 8
"""3D viewers of the "every sample" section. Each is a WebGL context and browsers keep about
16 per page (Chromium drops the oldest beyond that): with the picked, spread and blend
viewers and the mask editor, 12 would blank the editor."""
HIDDEN_RGB = (235, 30, 30)
"""Tint of the hidden pixels in the editor's picture of the mask."""
FACE_OUTLINE_RGB = (255, 200, 0)
"""Colour of the box drawn around the chosen face in the editor's picture, when the photo
has several faces."""
BRUSH_HIDE = "#ff2020"
"""Brush colour that marks pixels hidden."""
BRUSH_SHOW = "#20c040"
"""Brush colour that marks pixels visible (removes them from the mask)."""
MASK_ALPHA_THRESHOLD = 64
"""A painted layer pixel counts where its alpha is at least this (0-255)."""
BROWSER_FORMATS = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
}
"""Image formats every current browser shows (Pillow's format name -> its file suffixes); a
photo in another format (HEIC, TIFF, BMP, ...) is shown in the app as a PNG copy."""
PHOTO_FORMATS = ("JPEG", "PNG", "WebP", "HEIC", "TIFF", "BMP")
"""The photo formats the app names to its users: each one loads (:func:`load_photo`), and the
browser shows HEIC, TIFF and BMP through a PNG copy (:func:`browser_copy`). Other formats Pillow
reads load too; these are the common ones."""
BROWSER_COPY_AGE_S = 600.0
"""PNG copies of photos (:func:`browser_copy`) older than this (seconds) are deleted: Gradio
copies a shown file into its own cache as soon as the handler returns."""
PRESET_ENV = "D3DFACE_APP_PRESET"
"""Environment variable naming the preset the app starts with (e.g. ``test`` in tests)."""

ProgressFn = Callable[..., Any]


@dataclass(frozen=True)
class Preset:
    """A speed / quality setting: iteration counts of the two stages (None = pipeline default).

    Attributes:
        label: what the app shows. fit_iterations: stage-1 (fitting) iterations.
        iterations: stage-2 (diversity) iterations. listed: whether the app offers it to every
        visitor (an unlisted one only when the app starts with it, see :func:`listed_presets`).
    """

    label: str
    fit_iterations: int | None
    iterations: int | None
    listed: bool = True


PRESETS: dict[str, Preset] = {
    "fast": Preset("fast: quick preview", 80, 40),
    "balanced": Preset("balanced (default)", None, None),
    "quality": Preset("quality: slowest, closest fit", 2000, 300),
    "test": Preset("test: rough, seconds (for checks)", 30, 10, listed=False),
}
"""Speed / quality presets by name.

The stage-1 fit is still converging at its default 300 iterations. On the diversity
benchmark's first 6 faces (``python -m d3dface.bench diversity --faces 6 --no-auto-mask
--sweep-faces 0 --fit-iterations 2000``), quality's 2000 bring the fit's error from 1.55 to
1.08 mm where the face is visible and from 2.02 to 1.62 mm where it is hidden, for about 7x
the fitting time (about 30 s on one CPU thread)."""
DEFAULT_PRESET = "balanced"


def default_preset() -> str:
    """The preset the app starts with: ``$D3DFACE_APP_PRESET`` when it names one, else
    :data:`DEFAULT_PRESET`."""
    name = os.environ.get(PRESET_ENV, "").strip().lower()
    return name if name in PRESETS else DEFAULT_PRESET


def listed_presets() -> list[str]:
    """Names of the presets the app offers: the listed ones, and the one it starts with.

    ``test`` (results too rough to show anyone) is offered only when ``$D3DFACE_APP_PRESET``
    starts the app with it; the API takes every preset by name.
    """
    start = default_preset()
    return [name for name, preset in PRESETS.items() if preset.listed or name == start]


@dataclass(frozen=True)
class AppSettings:
    """Validated settings of one run (see :func:`validate_settings`)."""

    n: int
    k: float
    n_sigma: float
    preset: str
    seed: int
    face_index: int = 0

    @property
    def iterations(self) -> int | None:
        """Stage-2 iterations of the preset (None = the pipeline's default)."""
        return PRESETS[self.preset].iterations

    @property
    def fit_iterations(self) -> int | None:
        """Stage-1 iterations of the preset (None = the pipeline's default)."""
        return PRESETS[self.preset].fit_iterations


DEFAULT_SETTINGS = AppSettings(n=6, k=0.5, n_sigma=3.0, preset=DEFAULT_PRESET, seed=0)
"""The settings the app's controls start with (k = 0.5 is the paper's), which an API call
may leave out (the preset the app starts with is :func:`default_preset`)."""


def validate_settings(
    n: Any, k: Any, n_sigma: Any, preset: Any, seed: Any, face: Any = 0
) -> AppSettings:
    """Check the app's controls (they may come from the API as strings or floats). ``face``:
    which face of the photo, 0 = the largest (whether the photo has it is the pipeline's
    check).

    Raises:
        ValueError: a value is missing, not a number or out of range; the message names it.
    """
    n_value = _number(n, "number of samples N")
    k_value = _number(k, "k")
    sigma_value = _number(n_sigma, "n_sigma")
    seed_value = _number(seed if seed not in (None, "") else 0, "seed")
    face_value = _number(face if face not in (None, "") else 0, "face")
    if n_value != int(n_value) or not 1 <= n_value <= MAX_SAMPLES:
        raise ValueError(f"The number of samples N must be a whole number from 1 to {MAX_SAMPLES}.")
    if not 0.0 < k_value <= 100.0:
        raise ValueError("k must be above 0 and at most 100 (0.5 is the paper's value).")
    if not 0.0 <= sigma_value <= 100.0:
        raise ValueError("n_sigma must be from 0 to 100 (3 is the default).")
    if seed_value != int(seed_value) or not 0 <= seed_value <= MAX_SEED:
        raise ValueError(f"The seed must be a whole number 0 or more (at most {MAX_SEED}).")
    if face_value != int(face_value) or not 0 <= face_value < DEFAULT_MAX_FACES:
        raise ValueError(
            f"The face must be a whole number from 0 (the largest face) to {DEFAULT_MAX_FACES - 1}."
        )
    name = str(preset or DEFAULT_PRESET).strip().lower()
    name = next((key for key, p in PRESETS.items() if name in (key, p.label.lower())), name)
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    return AppSettings(int(n_value), k_value, sigma_value, name, int(seed_value), int(face_value))


def _number(value: Any, name: str) -> float:
    """``value`` as a finite float, or a ValueError naming the control."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return number


# ------------------------------------------------------------------------------ photos, masks
def load_photo(source: ImageSource | None) -> np.ndarray:
    """The photo the app works on: RGB uint8 (H, W, 3), longer side <= MAX_PHOTO_SIDE.

    Raises:
        ImageError: no photo, or not a usable image (message says what to do).
    """
    if source is None or (isinstance(source, str) and not source.strip()):
        raise ImageError("Upload a photo of a face first (or click one of the examples).")
    try:
        photo = load_image(source)
    except ImageError as exc:
        if isinstance(source, str | Path):
            raise _naming_the_upload(exc, source) from exc
        raise
    return np.ascontiguousarray(downscale_to(photo, MAX_PHOTO_SIDE)[0])


def _naming_the_upload(error: ImageError, path: str | Path) -> ImageError:
    """``error`` naming the uploaded file by its name instead of the server's copy's path."""
    return ImageError(str(error).replace(str(Path(path)), Path(path).name))


def shows_in_browser(path: str | Path) -> bool:
    """Whether a browser can show the image file as it is: a :data:`BROWSER_FORMATS` format
    under one of its suffixes (a TIFF named ``.png`` is not; the file's server copy is served
    by its suffix). A file Pillow cannot open counts as shown (there is nothing to convert)."""
    suffixes = {suffix for names in BROWSER_FORMATS.values() for suffix in names}
    if Path(path).suffix.lower() not in suffixes:
        return False
    try:
        with Image.open(path) as image:
            found = image.format
    except (OSError, ValueError):
        return True
    return Path(path).suffix.lower() in BROWSER_FORMATS.get(str(found), ())


def browser_copy(
    photo: np.ndarray, directory: str | Path, max_age_s: float = BROWSER_COPY_AGE_S
) -> Path:
    """Write a loaded photo (see :func:`load_photo`) as a PNG file with a generated name
    into ``directory`` (made when missing), for the browser to show; copies there older than
    ``max_age_s`` seconds are deleted.

    The PNG holds exactly the pixels the app works on: :func:`load_photo` of the copy equals
    :func:`load_photo` of the original.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob("photo_*.png"):
        try:
            if now - old.stat().st_mtime > max_age_s:
                old.unlink()
        except FileNotFoundError:  # removed meanwhile by another request
            pass
    path = folder / f"photo_{uuid.uuid4().hex[:12]}.png"
    Image.fromarray(np.ascontiguousarray(photo[..., :3], dtype=np.uint8)).save(path)
    return path


def sentence(text: str) -> str:
    """``text`` as a sentence, for showing a message on its own: a capital first letter and a
    closing full stop (unless it already ends with ``.``, ``!`` or ``?``; empty stays empty)."""
    text = text.strip()
    if text and not text.endswith((".", "!", "?")):
        text += "."
    return text[:1].upper() + text[1:]


def popup_text(title: str, message: str) -> str:
    """A pop-up's message, plain text: ``title`` on the first line, then ``message``, each a
    :func:`sentence`.

    The title leads the message because Gradio 6.31's pop-ups head every message with its
    kind only ("Error", "Warning"): the ``title`` given to ``gr.Error`` / ``gr.Warning``
    reaches API clients but is not shown in the browser. Plain text, not HTML: API clients get
    the message as it is, and the app's stylesheet sets the first line in bold in the browser.
    """
    return f"{sentence(title)}\n{sentence(message)}"


def mask_preview(
    photo: np.ndarray, mask: np.ndarray | None, face: ChosenFace | None = None
) -> np.ndarray:
    """The photo with the hidden pixels tinted :data:`HIDDEN_RGB` and outlined, (H, W, 3) uint8;
    when ``face`` is one of several in the photo, a :data:`FACE_OUTLINE_RGB` box around it.

    This is the editor's background: the user paints corrections over it.
    """
    preview = np.array(photo[..., :3], dtype=np.uint8, copy=True)
    thickness = max(1, round(max(photo.shape[:2]) / 400))
    if face is not None and face.found > 1:
        x0, y0, x1, y1 = face.landmarks.bbox
        margin = 0.1 * max(x1 - x0, y1 - y0)
        corners = np.round([[x0 - margin, y0 - margin], [x1 + margin, y1 + margin]]).astype(int)
        cv2.rectangle(preview, corners[0], corners[1], FACE_OUTLINE_RGB, 2 * thickness, cv2.LINE_AA)
    if mask is None or not np.any(mask):
        return preview
    hidden = np.asarray(mask, bool)
    tint = np.asarray(HIDDEN_RGB, np.float32)
    preview[hidden] = np.round(0.45 * preview[hidden] + 0.55 * tint).astype(np.uint8)
    contours, _ = cv2.findContours(
        hidden.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(preview, contours, -1, (255, 255, 255), thickness, cv2.LINE_AA)
    return preview


def editor_value(
    photo: np.ndarray, mask: np.ndarray | None, face: ChosenFace | None = None
) -> dict[str, Any]:
    """The ``gr.ImageEditor`` value: ``mask`` (None = nothing hidden) drawn into the photo
    (and the chosen face boxed, see :func:`mask_preview`), no painted layer yet (the editor
    makes one for the user's strokes)."""
    return {"background": mask_preview(photo, mask, face), "layers": [], "composite": None}


def photo_key(photo: np.ndarray) -> str:
    """A short fingerprint of a loaded photo's pixels (and shape): equal for the same photo,
    whichever file or event it came from."""
    pixels = np.ascontiguousarray(photo)
    digest = hashlib.sha1(str(pixels.shape).encode(), usedforsecurity=False)
    digest.update(pixels.tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class ShownMask:
    """The mask drawn into the editor's picture (see :func:`editor_value`), and the photo it
    was drawn for: the app keeps one per browser session.

    Attributes:
        photo: :func:`photo_key` of that photo. mask: (H, W) bool, None = nothing hidden.
    """

    photo: str
    mask: np.ndarray | None = field(repr=False)

    @classmethod
    def of(cls, photo: np.ndarray, mask: np.ndarray | None) -> ShownMask:
        """The shown mask of a loaded photo."""
        return cls(photo_key(photo), mask)

    def is_of(self, photo: np.ndarray) -> bool:
        """Whether it was drawn for this loaded photo."""
        return self.photo == photo_key(photo)


def editor_mask(
    value: Mapping[str, Any] | None, photo: np.ndarray, shown: ShownMask | None
) -> np.ndarray | None:
    """The editor's mask with the user's strokes (see :func:`mask_from_editor`) for a loaded
    photo, or None (nothing prepared: the app then uses the mask file, or the pipeline finds
    the mask itself) when the editor holds no photo or still holds an earlier one: a new
    photo's mask is shown only once it is found, and until then the editor's mask and strokes
    are the earlier photo's. None too when no mask was shown (``shown`` None: an API call)
    and the editor holds no stroke that hides: such an editor (any picture, no layers) hid
    nothing and overrode the mask file.

    Raises:
        ValueError: a layer's or the mask's shape does not match the photo's.
    """
    if shown is not None and not shown.is_of(photo):
        return None
    mask = mask_from_editor(value, photo.shape, None if shown is None else shown.mask)
    if shown is None and mask is not None and not mask.any():
        return None
    return mask


def _fit_to(mask: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A (h, w) bool mask scaled (nearest) to the photo's (H, W) when the aspect ratios agree."""
    height, width = shape[:2]
    if mask.shape == (height, width):
        return mask
    h, w = mask.shape
    if abs(w / h - width / height) > 0.02 * (width / height):
        raise ValueError(
            f"The {what} is {w}x{h} pixels but the photo is {width}x{height} (a different shape); "
            "draw the mask on this photo."
        )
    resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized > 0


def painted_strokes(layer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a painted editor layer into (hide, show) strokes, two (h, w) bool arrays.

    A pixel is painted where its alpha is at least :data:`MASK_ALPHA_THRESHOLD` (RGB layers:
    any non-black pixel); it is a "show" stroke where it is greener than it is red (the
    :data:`BRUSH_SHOW` colour), else a "hide" stroke (:data:`BRUSH_HIDE`).
    """
    pixels = np.asarray(layer)
    if pixels.ndim == 2:
        return pixels > 0, np.zeros(pixels.shape, bool)
    colour = pixels[..., :3].astype(np.int16)
    if pixels.shape[2] == 4:
        painted = pixels[..., 3] >= MASK_ALPHA_THRESHOLD
    else:
        painted = colour.max(axis=2) > 0
    show = painted & (colour[..., 1] > colour[..., 0])
    return painted & ~show, show


def mask_from_editor(
    value: Mapping[str, Any] | None, shape: tuple[int, ...], base: np.ndarray | None = None
) -> np.ndarray | None:
    """The occlusion mask after the user's corrections, (H, W) bool for a photo of ``shape``.

    Args:
        value: the editor's value (background = the photo with ``base`` drawn in; layers =
            the user's strokes, see :func:`painted_strokes`).
        shape: the photo's shape. base: the mask shown in the editor (None = nothing hidden).

    Returns:
        ``(base | hide strokes) & ~show strokes``, or None when the editor holds no photo
        (nothing prepared: the pipeline then finds the mask itself).

    Raises:
        ValueError: a layer's or the base mask's shape does not match the photo's.
    """
    if not value or value.get("background") is None:
        return None
    mask = (
        np.zeros(shape[:2], bool)
        if base is None
        else _fit_to(np.asarray(base, bool), shape, "mask")
    )
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        hide, show = painted_strokes(layer)
        mask = (mask | _fit_to(hide, shape, "painted mask")) & ~_fit_to(show, shape, "painted mask")
    return mask


def load_mask_file(path: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """A mask image (white = hidden; any format Pillow reads) as (H, W) bool for the photo.

    A mask of the original, larger photo is scaled down with it (same aspect ratio).

    Raises:
        ImageError: not an image (the message names the upload, not the server's copy).
        ValueError: a different shape from the photo.
    """
    try:
        hidden = read_mask_image(path)
    except ImageError as exc:
        raise _naming_the_upload(exc, path) from exc
    return _fit_to(hidden, shape, "mask file")


def automatic_mask(
    pipeline: Diverse3DFace, photo: np.ndarray, face_index: int = 0
) -> tuple[np.ndarray, str, tuple[str, ...], ChosenFace]:
    """Find the face (the ``face_index``-th largest) and its occluded pixels
    (:func:`~d3dface.perception.occlusion.segment_occlusion`, method ``"auto"``).

    Returns:
        The (H, W) bool mask, a one-line description, the segmentation's notes (not the one
        that facexlib is not installed, which a user of the app can do nothing about) and the
        face.

    Raises:
        NoFaceError: no face in the photo. ValueError: the photo has no such face.
    """
    from d3dface.perception.occlusion import PARSER_NOT_INSTALLED, segment_occlusion

    face = choose_face(photo, face_index, pipeline.detector)
    found = segment_occlusion(
        photo,
        pipeline.face_model,
        landmarks=face.landmarks,
        method="auto",
        detector=pipeline.detector,
    )
    mask = np.asarray(found.mask, bool)
    text = (
        f"found automatically: {100 * found.hidden_fraction:.0f}% of the face "
        f"hidden ({100 * mask.mean():.1f}% of the photo hidden)"
    )
    notes = tuple(str(note) for note in found.notes if note != PARSER_NOT_INSTALLED)
    return mask, text, notes, face


def chosen_face(photo: np.ndarray, face_index: int = 0) -> ChosenFace | None:
    """The ``face_index``-th largest face of a loaded photo (with the number of faces found),
    None when the photo has no face or fewer faces (the run then says so)."""
    try:
        return choose_face(photo, face_index)
    except ValueError:  # NoFaceError included
        return None


def face_choices(found: int) -> list[tuple[str, int]]:
    """The choices of the app's face picker for a photo with ``found`` faces: (label,
    face index), largest first."""
    return [(size_rank(index).removeprefix("the "), index) for index in range(found)]


def face_status(face: ChosenFace | None) -> str:
    """The mask status's sentence on which face the mask and the run are of, when the photo
    has several ("" otherwise)."""
    if face is None or face.found < 2:
        return ""
    return (
        f"This photo has {face.found} faces: this is **{size_rank(face.index)}**, boxed in "
        "yellow. Pick another under **Face**."
    )


# ------------------------------------------------------------------------------ the pipeline
_pipeline: Diverse3DFace | None = None
_pipeline_lock = threading.Lock()


def get_pipeline() -> Diverse3DFace:
    """The app's pipeline, loaded once (``$D3DFACE_CHECKPOINTS`` or the shipped weights),
    on :func:`app_device`."""
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            from d3dface.hub import CHECKPOINTS_DIR
            from d3dface.pipeline import Diverse3DFace

            source = os.environ.get("D3DFACE_CHECKPOINTS") or CHECKPOINTS_DIR
            _pipeline = Diverse3DFace.from_pretrained(source, device=app_device())
        return _pipeline


def app_device() -> str:
    """``$D3DFACE_DEVICE`` (e.g. ``cuda`` on a GPU Space), else ``cpu``."""
    return os.environ.get("D3DFACE_DEVICE") or "cpu"


def device_note() -> str:
    """Where the computation runs, said plainly."""
    count = torch.get_num_threads()
    threads = f"{count} thread{'s' if count != 1 else ''}"
    if app_device().startswith("cuda"):
        return f"Runs on the GPU ({app_device()}); detection and masks on the CPU ({threads})."
    if torch.cuda.is_available():
        return (
            f"Runs on the CPU ({threads}); a CUDA GPU is present: set D3DFACE_DEVICE=cuda to "
            "use it."
        )
    return f"Runs on the CPU ({threads})."


# ------------------------------------------------------------------------------ runs
@dataclass(frozen=True)
class RunOutput:
    """Files and figures of one app run (all inside ``directory``).

    Attributes:
        run_id: generated name of the run. directory: its temporary folder.
        sample_glbs: one GLB per sample. thumbnails: one shaded picture per sample.
        spread_glb: mean mesh coloured by per-vertex spread. overlay: the fit drawn over the
            photo. mask_png: the mask used (white = hidden). zip_path: every file in one zip.
        summary: the content of ``metrics.json`` (plus the app's settings and timings).
    """

    run_id: str
    directory: Path
    sample_glbs: list[Path]
    thumbnails: list[Path]
    spread_glb: Path
    overlay: Path
    mask_png: Path
    zip_path: Path
    summary: dict[str, Any] = field(repr=False)


class RunStore:
    """The last ``capacity`` results in memory, each with its folder; older ones are dropped
    and their folders deleted. Thread-safe.

    Args:
        root: folder for the runs' folders (default: a new temporary folder).
        capacity: results kept (interpolation needs the result in memory).
    """

    def __init__(self, root: str | Path | None = None, capacity: int = 8) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._root = Path(root) if root is not None else None
        self.capacity = capacity
        # run id -> (result, folder, photo_key of the photo the run was given)
        self._runs: OrderedDict[str, tuple[FaceResult, Path, str]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The folder holding every run's folder (made on first use)."""
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="d3dface_app_"))
            self._root.mkdir(parents=True, exist_ok=True)
            return self._root

    def new_directory(self) -> tuple[str, Path]:
        """A generated run id and its new, empty folder."""
        run_id = uuid.uuid4().hex[:12]
        return run_id, Path(tempfile.mkdtemp(prefix=f"run_{run_id}_", dir=self.root))

    def add(self, run_id: str, result: FaceResult, directory: Path, photo: str = "") -> None:
        """Keep a result (``photo``: :func:`photo_key` of the photo it was made from); drop
        (and delete the folders of) the oldest beyond capacity."""
        with self._lock:
            self._runs[run_id] = (result, directory, photo)
            self._runs.move_to_end(run_id)
            while len(self._runs) > self.capacity:
                _, (_, old_directory, _) = self._runs.popitem(last=False)
                shutil.rmtree(old_directory, ignore_errors=True)

    def get(self, run_id: str | None) -> tuple[FaceResult, Path]:
        """The result and folder of a run.

        Raises:
            ValueError: unknown or dropped run (run the reconstruction again).
        """
        with self._lock:
            if not run_id or run_id not in self._runs:
                raise ValueError(
                    "This result is no longer in memory (or there is none yet); "
                    "press Reconstruct again."
                )
            self._runs.move_to_end(run_id)
            result, directory, _ = self._runs[run_id]
            return result, directory

    def photo_of(self, run_id: str | None) -> str | None:
        """The :func:`photo_key` a kept run was added with; None for an unknown run."""
        with self._lock:
            entry = self._runs.get(run_id) if run_id else None
            return None if entry is None else entry[2]

    def __len__(self) -> int:
        return len(self._runs)


def _thumbnails(result: FaceResult, directory: Path, tile: int = 256) -> list[Path]:
    """One shaded picture per sample (front and turned views, side by side), PNG files."""
    from d3dface.figures import head_part
    from d3dface.render import render_preview

    keep, head_faces = head_part(result.head_faces, result.samples.shape[1])
    paths = []
    for index, sample in enumerate(result.samples[:, keep]):
        views = [
            _trim(render_preview(sample, head_faces, (tile, tile), yaw_deg=yaw)) for yaw in (0, 35)
        ]
        height = max(view.shape[0] for view in views)
        views = [
            np.pad(v, ((0, height - v.shape[0]), (0, 0), (0, 0)), constant_values=255)
            for v in views
        ]
        path = directory / f"thumb_{index:02d}.png"
        Image.fromarray(np.hstack(views)).save(path)
        paths.append(path)
    return paths


def _trim(picture: np.ndarray, margin: int = 6) -> np.ndarray:
    """Crop the white border around a render (H, W, 3) uint8, keeping ``margin`` pixels."""
    ink = np.argwhere((picture < 250).any(axis=2))
    if not len(ink):
        return picture
    (top, left), (bottom, right) = ink.min(0), ink.max(0)
    height, width = picture.shape[:2]
    return picture[
        max(0, top - margin) : min(height, bottom + margin + 1),
        max(0, left - margin) : min(width, right + margin + 1),
    ]


def _zip(paths: list[Path], destination: Path) -> Path:
    """Zip ``paths`` (flat, by file name) into ``destination``."""
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            archive.write(path, arcname=path.name)
    return destination


def reconstruct(
    pipeline: Diverse3DFace,
    photo: np.ndarray,
    mask: np.ndarray | None,
    settings: AppSettings,
    store: RunStore,
    progress: ProgressFn | None = None,
) -> RunOutput:
    """Run the pipeline and write every file of the run into a fresh folder of ``store``.

    Args:
        pipeline: the loaded pipeline. photo: (H, W, 3) uint8 (see :func:`load_photo`).
        mask: (H, W) bool (True = hidden), or None to find it automatically.
        settings: validated settings. store: keeps the result (for interpolation).
        progress: ``progress(fraction, description)`` (a ``gr.Progress`` fits).

    Raises:
        ValueError (NoFaceError, ImageError): a user error; the message says what to do.
    """
    # not ``progress or ...``: a gr.Progress is falsy (it has a length, 0 before a run)
    report = progress if progress is not None else (lambda fraction, text=None: None)
    run_id, directory = store.new_directory()
    try:
        result = pipeline(
            photo,
            mask=mask,
            n=settings.n,
            k=settings.k,
            n_sigma=settings.n_sigma,
            seed=settings.seed,
            iterations=settings.iterations,
            fit_iterations=settings.fit_iterations,
            face_index=settings.face_index,
            mask_method="auto",
            progress=lambda fraction, text: report(0.9 * fraction, text),
        )
        report(0.9, "writing meshes and pictures")
        clock = time.perf_counter()
        paths = result.save(directory, formats=("glb", "ply", "obj"))
        thumbnails = _thumbnails(result, directory)
        zip_path = _zip(paths, directory / f"d3dface_{run_id}.zip")
        files_s = round(time.perf_counter() - clock, 3)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    summary = json.loads((directory / "metrics.json").read_text())
    summary["app"] = {"preset": settings.preset, "files_s": files_s, "run_id": run_id}
    store.add(run_id, result, directory, photo_key(photo))
    report(1.0, "done")
    return RunOutput(
        run_id=run_id,
        directory=directory,
        sample_glbs=_sample_glbs(result, directory),
        thumbnails=thumbnails,
        spread_glb=directory / "spread.glb",
        overlay=directory / "overlay.png",
        mask_png=directory / "mask.png",
        zip_path=zip_path,
        summary=summary,
    )


def run_photo_is(store: RunStore, run_id: str | None, photo: np.ndarray) -> bool:
    """Whether a run kept in ``store`` was made from this loaded photo (see
    :func:`load_photo`; not the result's own ``photo``, which the pipeline shrinks when the
    face is large); False for no run or one no longer kept."""
    return store.photo_of(run_id) == photo_key(photo)


def sample_glbs(store: RunStore, run_id: str | None) -> list[Path]:
    """The GLB file of every sample of a run, in order.

    Raises:
        ValueError: unknown run.
    """
    return _sample_glbs(*store.get(run_id))


def _sample_glbs(result: FaceResult, directory: Path) -> list[Path]:
    """The GLB file of every sample of ``result``, written into ``directory``."""
    return [sample_mesh_path(directory, index, ".glb") for index in range(result.n_samples)]


def interpolation_mesh(store: RunStore, run_id: str | None, start: Any, end: Any, t: Any) -> Path:
    """Decode the blend ``(1 - t) * z_start + t * z_end`` of two samples' latent codes to a
    new GLB file (t = 0 gives sample ``start``, t = 1 sample ``end``; coloured like them).
    It is named as the ``interpolate`` command names blends (``blend_00_01_050.glb``: samples
    0 and 1, 50% of sample 1; see :func:`~d3dface.latents_file.blend_stem`), for the user who
    downloads it, in a folder of its own under the run's ``blends/``: no two requests share
    a file.

    Older blends of the run are deleted (the app has already served them).

    Raises:
        ValueError: unknown run, bad sample index, or t outside [0, 1].
    """
    from d3dface.meshio import export_mesh

    result, directory = store.get(run_id)
    try:
        first, second, blend = int(start), int(end), float(t)
    except (TypeError, ValueError):
        raise ValueError("Pick two samples and a blend between 0 and 1.") from None
    # checks the samples and the blend (t in [0, 1]); decoded without grad, on the CPU
    vertices = result.interpolate(first, second, blend).numpy()
    blends = directory / "blends"
    for old in blends.glob("*"):
        shutil.rmtree(old, ignore_errors=True)
    folder = blends / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    path = folder / f"{blend_stem(first, second, blend)}.glb"
    return export_mesh(path, vertices, result.faces.numpy(), result.fit.colours.numpy())


# ------------------------------------------------------------------------------ text
_STAGES = ("detect", "mask", "fit", "diversity")
_MASK_SOURCES = {"user": "mask of step 2", "none": "no mask (nothing hidden)"}
"""The summary's words for where a run's mask came from (``FaceResult.mask_source``); any
other source is the automatic segmentation's, "found automatically" as in the mask status."""


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """A short Markdown report of a run: metrics (with what they mean) and timings."""
    metrics = summary.get("metrics") or {}
    timings = summary.get("timings_s") or {}
    settings = summary.get("settings") or {}
    app = summary.get("app") or {}
    n = settings.get("n_samples", "?")
    total = float(timings.get("total", 0.0)) + float(app.get("files_s", 0.0))
    parts = " · ".join(f"{name} {timings[name]:.1f} s" for name in _STAGES if name in timings)
    if "files_s" in app:
        parts += f" · files {app['files_s']:.1f} s"
    hidden = summary.get("occluded_pixel_fraction")
    mask_text = _MASK_SOURCES.get(summary.get("mask_source"), "mask found automatically")
    if hidden is not None:
        mask_text += f", {100 * float(hidden):.1f}% of the photo hidden"
    face = summary.get("face") or {}
    if face.get("faces_found", 1) > 1:
        mask_text += f"; face: {face['which']}"
    lines = [
        f"**{n} {'completion' if n == 1 else 'completions'} in {total:.1f} s** ({parts}); "
        f"{mask_text}; "
        f"preset {app.get('preset', '?')}, k = {settings.get('k', '?')}, "
        f"n_sigma = {settings.get('n_sigma', '?')}, seed = {settings.get('seed', '?')}.",
        "",
    ]
    if metrics:
        lines += [
            "| ASD-V (visible part) | ASD-O (hidden part) | ratio ASD-O / ASD-V |",
            "| --- | --- | --- |",
            f"| {metrics['asd_v_mm']:.2f} mm | {metrics['asd_o_mm']:.2f} mm "
            f"| {metrics['asd_ratio']:.1f} |",
            "",
            "ASD: mean distance from each sample to its nearest other sample. Good sets agree "
            "where the face is visible (low ASD-V) and differ where it is hidden (high ASD-O); "
            "the paper reports a ratio of 6.0 on CelebA.",
        ]
    else:
        lines.append(
            "No diversity metrics: they need at least 2 samples and both visible and hidden "
            "parts of the face."
        )
    return "\n".join(lines)
