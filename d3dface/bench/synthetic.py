"""Synthetic test faces with known shape: renders of the face model, optionally occluded.

Renders come from :func:`d3dface.facemodel.landmark_embedding.render_view` (random identity,
expression, pose, light, skin tone, background, optionally regional detail from the local
models; lips, brows and irises painted by
:func:`~d3dface.facemodel.landmark_embedding.model_appearance_pattern`, so mediapipe finds the
face). An occluder is a filled rectangle or ellipse of random colour over part of the
face; its mask is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from d3dface.bench.alignment import align_on
from d3dface.facemodel.landmark_embedding import (
    SyntheticView,
    project_surface_points,
    render_view,
)
from d3dface.facemodel.landmark_embedding import (
    model_appearance_pattern as synthetic_pattern,  # the bench's name for it
)
from d3dface.facemodel.model import FaceModel
from d3dface.render import rasterize, vertex_visibility

__all__ = [
    "SyntheticFace",
    "aligned_error_mm",
    "draw_occluder",
    "synthetic_face",
    "synthetic_pattern",
    "truly_visible",
]

_FACE_AREA_MAX_REST = 0.5


@dataclass(frozen=True)
class SyntheticFace:
    """A render with its truth.

    ``image`` (H, W, 3) uint8 (occluder drawn in), ``mask`` (H, W) bool or None, ``view`` the
    clean render (true model-space vertices, projected vertices, z-buffer).
    """

    image: np.ndarray
    mask: np.ndarray | None
    view: SyntheticView


def draw_occluder(
    image: np.ndarray, face_box: np.ndarray, generator: torch.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a random rectangle or ellipse of random colour over part of a face.

    Args:
        image: (H, W, 3) uint8. face_box: (4,) x0, y0, x1, y1 of the face in pixels.
        generator: the random stream.

    Returns:
        The painted copy (H, W, 3) uint8 and its mask (H, W) bool.
    """
    draws = torch.rand(8, generator=generator).numpy()
    x0, y0, x1, y1 = face_box
    width, height = x1 - x0, y1 - y0
    centre = (x0 + width * (0.2 + 0.6 * draws[0]), y0 + height * (0.2 + 0.6 * draws[1]))
    half = (width * (0.15 + 0.2 * draws[2]), height * (0.12 + 0.18 * draws[3]))
    colour = tuple(int(c) for c in np.round(255 * draws[4:7]))
    canvas = np.zeros(image.shape[:2], np.uint8)
    if draws[7] < 0.5:
        corner0 = (round(centre[0] - half[0]), round(centre[1] - half[1]))
        corner1 = (round(centre[0] + half[0]), round(centre[1] + half[1]))
        cv2.rectangle(canvas, corner0, corner1, 255, thickness=-1)
    else:
        axes = (round(half[0]), round(half[1]))
        cv2.ellipse(canvas, (round(centre[0]), round(centre[1])), axes, 0, 0, 360, 255, -1)
    mask = canvas > 0
    painted = image.copy()
    painted[mask] = colour
    return painted, mask


def synthetic_face(
    model: FaceModel,
    pattern: Tensor,
    seed: int,
    occluded: bool = False,
    local_scale: float = 0.0,
) -> SyntheticFace:
    """One random render of the model (and an occluder when ``occluded``), from ``seed``.

    ``pattern`` (V,) from :func:`synthetic_pattern`; ``local_scale`` > 0 adds regional detail
    from the local models' prior (see :func:`d3dface.facemodel.landmark_embedding.render_view`).
    """
    generator = torch.Generator().manual_seed(seed)
    view = render_view(model, pattern, generator, local_scale=local_scale)
    if not occluded:
        return SyntheticFace(view.image, None, view)
    points = project_surface_points(
        view.screen, model.faces, model.landmark_faces, model.landmark_bary
    ).numpy()
    box = np.concatenate([points.min(axis=0), points.max(axis=0)])
    image, mask = draw_occluder(view.image, box, generator)
    return SyntheticFace(image, mask, view)


def truly_visible(model: FaceModel, face: SyntheticFace) -> np.ndarray:
    """(V,) bool: facial vertices the render shows (in front, facing) and no occluder hides."""
    screen = face.view.screen[None]
    height, width = face.image.shape[:2]
    fragments = rasterize(screen, model.faces, (height, width))
    seen = vertex_visibility(screen, model.faces, fragments)[0].numpy()
    facial = (model.region_weights[model.region_index("rest")] < _FACE_AREA_MAX_REST).numpy()
    visible = seen & facial
    if face.mask is not None:
        u, v = face.view.screen[:, :2].numpy().T
        cols = np.clip(np.floor(u).astype(np.int64), 0, width - 1)
        rows = np.clip(np.floor(v).astype(np.int64), 0, height - 1)
        visible &= ~face.mask[rows, cols]
    return visible


def aligned_error_mm(fitted: np.ndarray, true: np.ndarray, where: np.ndarray) -> float:
    """RMS vertex distance in mm over ``where`` after similarity-aligning fitted to true there.

    ``fitted``, ``true`` (V, 3) metres; ``where`` (V,) bool. The distance of the project's
    metrics: ``||A_W - B_W||_F / sqrt(|W|)``.
    """
    aligned = align_on(fitted[where].astype(np.float64), true[where].astype(np.float64))
    difference = aligned - true[where]
    return float(1000.0 * np.sqrt((difference**2).sum(axis=1).mean()))
