"""Occlusion from facexlib's learned face parser (BiSeNet or ParseNet), where it can run.

facexlib is an optional extra: ``pip install facexlib``. It imports torchvision (which needs a
matching, usually CUDA, build of torch) and downloads its parsing weights from GitHub on first
use, so it works on a GPU Space with network access but not on this project's CPU machines;
there :func:`load_face_parser` raises :class:`FacexlibUnavailableError` with the reason and the
model-based segmentation (:mod:`d3dface.perception.occlusion_model`) is used instead.

The parser labels each pixel of a 512 x 512 face crop with one of 19 CelebAMask-HQ classes.
A pixel of the face (the fitted footprint, grown a little) is occluded when its class is not a
face class (skin, brows, eyes, nose, mouth, lips), or when it is eyeglasses. The two networks
number the classes differently; both orders are below.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from d3dface.perception.face_crop import crop_face
from d3dface.perception.face_layout import FaceLayout

__all__ = [
    "FACEXLIB_CLASSES",
    "FACE_CLASSES",
    "OCCLUDER_CLASSES",
    "FaceParser",
    "FacexlibUnavailableError",
    "load_face_parser",
    "segment_with_facexlib",
]

FACEXLIB_CLASSES = {
    "bisenet": (
        *("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear"),
        *("r_ear", "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth"),
        *("hair", "hat"),
    ),
    "parsenet": (
        *("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow"),
        *("l_ear", "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l"),
        *("neck", "cloth"),
    ),
}
"""Class names in output-channel order of facexlib's two parsers (``init_parsing_model``)."""

FACE_CLASSES = frozenset(
    {"skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip"}
)
"""Classes that are the face itself; anything else over the face hides it."""

OCCLUDER_CLASSES = frozenset({"eye_g"})
"""Classes that hide the face even though the parser may place them over its parts."""

_INPUT_SIZE = 512
_NORMALISATION = {  # (mean, std) per RGB channel of the [0, 1] input, as in facexlib's demos
    "bisenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "parsenet": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
_GROW = 0.05  # the footprint is grown by this fraction of the face's size, as in the model method


class FacexlibUnavailableError(RuntimeError):
    """facexlib cannot be imported here, or its parsing weights cannot be loaded."""


@dataclass(frozen=True)
class FaceParser:
    """A loaded facexlib parsing network.

    Attributes:
        name: ``"bisenet"`` or ``"parsenet"``.
        network: the torch module; ``network(x)[0]`` maps ``(1, 3, 512, 512)`` normalised RGB
            to ``(1, 19, 512, 512)`` class scores.
        device: where it runs.
    """

    name: str
    network: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
    device: torch.device

    @torch.no_grad()
    def parse(self, image: np.ndarray) -> np.ndarray:
        """Class index ``(512, 512)`` int64 of each pixel of a ``(512, 512, 3)`` uint8 RGB crop."""
        mean, std = _NORMALISATION[self.name]
        pixels = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)
        pixels = (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        scores = self.network(pixels[None].to(self.device))[0]
        return scores[0].argmax(dim=0).cpu().numpy()


@functools.cache
def load_face_parser(name: str = "bisenet", device: str | None = None) -> FaceParser:
    """Load (once per process) one of facexlib's face parsers.

    Args:
        name: ``"bisenet"`` (default) or ``"parsenet"``.
        device: torch device; default CUDA when available, else the CPU.

    Raises:
        ValueError: unknown ``name``.
        FacexlibUnavailableError: facexlib does not import, or its weights cannot be had (they are
            downloaded on first use).
    """
    if name not in FACEXLIB_CLASSES:
        raise ValueError(
            f"unknown facexlib parser {name!r}; choose from {sorted(FACEXLIB_CLASSES)}"
        )
    try:
        from facexlib.parsing import init_parsing_model
    except Exception as exc:  # ImportError, or torchvision failing inside facexlib's imports
        raise FacexlibUnavailableError(
            f"facexlib's face parser is not available here ({type(exc).__name__}: {exc}); it is "
            "an optional extra (`pip install facexlib`, which needs torchvision and a matching "
            "torch build, usually CUDA). Use the model-based segmentation (method 'model') or "
            "give a mask."
        ) from exc
    resolved = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        network = init_parsing_model(model_name=name, device=resolved)
    except Exception as exc:  # download or loading failures of any kind
        raise FacexlibUnavailableError(
            f"facexlib imported, but its '{name}' parsing weights could not be loaded "
            f"({type(exc).__name__}: {exc}); they are downloaded on first use, which needs "
            "network access. Use the model-based segmentation (method 'model') or give a mask."
        ) from exc
    return FaceParser(name=name, network=network, device=resolved)


def segment_with_facexlib(layout: FaceLayout, photo: np.ndarray, parser: FaceParser) -> np.ndarray:
    """Occluded pixels of the face in the layout's crop, from facexlib's parser.

    The parser sees the layout's crop window cut from the photo at 512 px (its training
    resolution); its labels are brought back to the layout's crop by area averaging.

    Args:
        layout: the face laid out in its crop. photo: ``(H, W, 3)`` uint8 RGB.
        parser: a loaded :class:`FaceParser`.

    Returns:
        ``(S, S)`` bool, True where the face is hidden (inside the grown footprint only).
    """
    crop = layout.crop
    x0, y0 = crop.origin
    corners = np.array([[x0, y0], [x0 + crop.side, y0 + crop.side]], dtype=np.float64)
    window = crop_face(photo, corners, size=_INPUT_SIZE, margin=1.0)
    labels = parser.parse(np.round(window.image * 255.0).astype(np.uint8))
    names = FACEXLIB_CLASSES[parser.name]
    face = np.array([n in FACE_CLASSES and n not in OCCLUDER_CLASSES for n in names])
    hidden = (~face[labels]).astype(np.float32)
    hidden = cv2.resize(hidden, (crop.size, crop.size), interpolation=cv2.INTER_AREA) >= 0.5
    return hidden & layout.grown(_GROW)
