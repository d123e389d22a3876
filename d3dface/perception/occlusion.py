"""Which pixels of the face are hidden: one interface, three sources.

:func:`segment_occlusion` returns an :class:`OcclusionResult` for one face of a photo, from

- ``"user"``: a mask the user gives (an image file, white = hidden, or an ``(H, W)`` array,
  nonzero = hidden, a float one at least 0.5, e.g. painted in an app), validated by
  :func:`~d3dface.perception.occlusion_mask.check_user_mask`;
- ``"facexlib"``: facexlib's learned face parser, an optional extra (``pip install
  facexlib``; it needs torchvision and downloads its weights on first use, so it runs on a GPU
  Space, not on this project's CPU machines), see :mod:`d3dface.perception.occlusion_facexlib`;
- ``"model"``: the default that needs no downloaded weights, a segmentation from the fitted
  face model and a robust model of the face's own skin, see
  :mod:`d3dface.perception.occlusion_model`.

``method="auto"`` uses the user's mask when one is given, else facexlib where it can run, else
the model. Every source first places the face model quickly
(:func:`~d3dface.perception.face_layout.face_layout`, about 0.3 s) to know where the face is;
the model-based segmentation then takes about 0.2-0.5 s on one CPU thread. A photo whose face
is larger than :data:`~d3dface.perception.working_size.MAX_FACE_SIDE` pixels is segmented on a
shrunk copy and the mask brought back to the photo's size.

The result's landmark visibility follows :func:`d3dface.fitting.fit_face`'s rule (inside the
photo and not on a hidden pixel), so ``fit_face(photo, model, result.mask, result.landmarks)``
uses exactly the landmarks marked visible.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from d3dface.facemodel.model import FaceModel
from d3dface.fitting import visible_landmarks
from d3dface.imageio import ImageSource, load_image
from d3dface.perception.face_layout import FaceLayout, face_layout
from d3dface.perception.landmarks import FaceLandmarks, LandmarkDetector, detect_face
from d3dface.perception.occlusion_facexlib import (
    FacexlibUnavailableError,
    load_face_parser,
    segment_with_facexlib,
)
from d3dface.perception.occlusion_mask import check_user_mask
from d3dface.perception.occlusion_model import ModelSegmentationSettings, segment_with_model
from d3dface.perception.working_size import mask_to_size, working_photo

__all__ = ["METHODS", "PARSER_NOT_INSTALLED", "OcclusionResult", "segment_occlusion"]

METHODS = ("auto", "model", "facexlib", "user")
"""Accepted values of ``segment_occlusion(method=...)``."""

_FOUND_BY_MODEL = "found by d3dface's own colour-based segmentation"
PARSER_NOT_INSTALLED = (
    f"{_FOUND_BY_MODEL} (facexlib's learned face parser, an optional extra, is not installed)"
)
"""The note of an automatic mask found without facexlib because it is not installed: the
usual case, which the app does not show (its users cannot install anything)."""

_MODEL_SETTINGS = ModelSegmentationSettings()

_GREY_CHROMA_SD = 1.0
"""Standard deviation of a* and b* (Lab) over the face below which a photo counts as grey."""


@dataclass(frozen=True, eq=False)
class OcclusionResult:
    """The hidden part of one face.

    Attributes:
        mask: ``(H, W)`` bool, photo size, True where the face is hidden. Found masks may
            reach a little past the face region (by 5 % of the face's size, 20 % below it),
            where an occluder continues past the fitted outline (a guessed jaw is often short).
        source: ``"user"``, ``"model"`` or ``"facexlib"``.
        face_region: ``(H, W)`` bool, the face's footprint (the quick fit's facial surface:
            skin and eyes, no scalp, ears or neck).
        landmark_visible: ``(478,)`` bool, landmark inside the photo and not on a hidden pixel.
        landmarks: the face's landmarks (detected, or the given ones), photo pixels.
        timings: seconds per step (``detect``, ``layout``, ``segment``, ``total``).
        notes: remarks for the user (an empty mask, a fallback from facexlib, ...).
    """

    mask: np.ndarray
    source: str
    face_region: np.ndarray
    landmark_visible: np.ndarray
    landmarks: FaceLandmarks
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def hidden_fraction(self) -> float:
        """Share of the face region that the mask hides."""
        region = int(self.face_region.sum())
        return float((self.mask & self.face_region).sum() / region) if region else 0.0


def segment_occlusion(
    image: ImageSource,
    model: FaceModel,
    landmarks: FaceLandmarks | None = None,
    method: str = "auto",
    face_index: int = 0,
    detector: LandmarkDetector | None = None,
    user_mask: np.ndarray | str | Path | None = None,
) -> OcclusionResult:
    """Find (or take from the user) the hidden pixels of one face.

    Args:
        image: the photo (anything :func:`d3dface.imageio.load_image` accepts).
        model: the face model (with regions and a landmark embedding).
        landmarks: the face's landmarks in photo pixels; detected when None.
        method: one of :data:`METHODS`.
        face_index: which face when detecting (0 = largest).
        detector: landmark detector to reuse (default: the shared one).
        user_mask: the user's mask: ``(H, W)`` array (nonzero = hidden; float: >= 0.5) or
            image file (white = hidden); needs ``method`` ``"auto"`` or ``"user"``.

    Returns:
        The :class:`OcclusionResult`.

    Raises:
        ImageError: the photo or the mask file cannot be read. NoFaceError: no face found.
        ValueError: bad method or face index; a bad user mask (size, NaN, white all over), or
            one that leaves too few landmarks visible to place the face.
        FacexlibUnavailableError: ``method="facexlib"`` where facexlib cannot run.
    """
    if method not in METHODS:
        raise ValueError(f"unknown occlusion method {method!r}; choose from {METHODS}")
    if user_mask is not None and method not in ("auto", "user"):
        raise ValueError(
            f"a mask was given, so the method must be 'auto' or 'user', not {method!r}"
        )
    if method == "user" and user_mask is None:
        raise ValueError("method 'user' needs a mask (user_mask)")
    start = time.perf_counter()
    photo = load_image(image)
    user = None if user_mask is None else check_user_mask(user_mask, photo.shape)
    if landmarks is None:
        landmarks = detect_face(photo, face_index, detector)
    timings = {"detect": time.perf_counter() - start}

    clock = time.perf_counter()
    work = working_photo(photo, landmarks, user)
    layout = face_layout(work.photo, model, work.landmarks, occlusion_mask=work.mask)
    face_region = mask_to_size(layout.to_photo(layout.footprint), photo.shape[:2])
    timings["layout"] = time.perf_counter() - clock

    clock = time.perf_counter()
    notes: list[str] = []
    if user is not None:
        mask, source = user, "user"
        notes += _user_mask_notes(user, face_region)
    else:
        found, source = _found_mask(work.photo, layout, method, notes)
        mask = mask_to_size(found, photo.shape[:2])
        if not (mask & face_region).any():
            notes.append("no occluder was found: the whole face is treated as visible")
    timings["segment"] = time.perf_counter() - clock
    timings["total"] = time.perf_counter() - start
    return OcclusionResult(
        mask=mask,
        source=source,
        face_region=face_region,
        landmark_visible=visible_landmarks(landmarks.points, mask, photo.shape[:2]),
        landmarks=landmarks,
        timings={name: round(seconds, 4) for name, seconds in timings.items()},
        notes=tuple(notes),
    )


def _found_mask(
    photo: np.ndarray, layout: FaceLayout, method: str, notes: list[str]
) -> tuple[np.ndarray, str]:
    """The mask ``(H, W)`` bool found by facexlib or the model, and its source's name."""
    if method in ("auto", "facexlib"):
        try:
            parser = load_face_parser()
        except FacexlibUnavailableError as exc:
            if method == "facexlib":
                raise
            notes.append(_facexlib_absence(exc))
        else:
            found = segment_with_facexlib(layout, photo, parser)
            return layout.to_photo(found, guide=photo), "facexlib"
    settings = _MODEL_SETTINGS
    if _lacks_colour(layout):
        notes.append(
            "the photo has no colour, and the automatic mask tells an occluder from skin mostly "
            "by colour, so it may miss some: check the mask and paint what it missed, or give a "
            "mask file"
        )
    found = segment_with_model(layout, settings)
    mask = layout.to_photo(found, guide=photo, radius=settings.snap_radius, eps=settings.snap_eps)
    return mask, "model"


def _lacks_colour(layout: FaceLayout) -> bool:
    """True when the face's pixels are grey: their chroma (Lab a*, b*) varies by less than
    :data:`_GREY_CHROMA_SD` (a colour face varies by 3 or more, skin alone)."""
    pixels = layout.crop.image[layout.footprint]  # (P, 3) RGB in [0, 1]
    chroma = cv2.cvtColor(pixels[None], cv2.COLOR_RGB2LAB)[0, :, 1:]
    return bool(chroma.std(axis=0).max() < _GREY_CHROMA_SD)


def _facexlib_absence(error: FacexlibUnavailableError) -> str:
    """The note of a mask that ``"auto"`` found with the model because facexlib's parser could
    not be used: :data:`PARSER_NOT_INSTALLED` when it is not installed, else why it failed."""
    cause = error.__cause__
    missing = cause.name if isinstance(cause, ModuleNotFoundError) else None
    if missing is not None and missing.partition(".")[0] == "facexlib":
        return PARSER_NOT_INSTALLED
    reason = cause or error
    return (
        f"{_FOUND_BY_MODEL}: facexlib is installed but could not be used "
        f"({type(reason).__name__}: {reason})"
    )


def _user_mask_notes(mask: np.ndarray, face_region: np.ndarray) -> list[str]:
    """Remarks on a valid user mask ``(H, W)`` given the face region ``(H, W)``."""
    if not mask.any():
        return ["the mask is empty: nothing is hidden, the whole face is fitted"]
    if not (mask & face_region).any():
        return ["the mask does not touch the face: the whole face is fitted"]
    return []
