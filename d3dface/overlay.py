"""The fitted mesh drawn over its photo, coloured by visibility class."""

from __future__ import annotations

import math

import numpy as np
import torch

from d3dface.facemodel.model import FaceModel
from d3dface.fitting import FitResult, facial_skin_faces
from d3dface.render import Camera, project, render
from d3dface.visibility import visibility_colours

__all__ = ["draw_overlay", "head_faces"]

_LIGHT = (-0.8, 0.5, 0.6)  # camera space: from the upper left, oblique so the shape shows
_CHIN_LANDMARK = 152  # mediapipe: the chin's lowest point
_NECK_CUT_BELOW_CHIN = 0.018  # metres
_NECK_CUT_SLOPE = 0.25  # the cut rises this much per metre toward the back of the head


def head_faces(model: FaceModel) -> torch.Tensor:
    """(F', 3) the model's triangles without the neck and shoulders.

    A photo's neck is mostly hidden by the collar or the chin's shadow and the model's neck
    plate is not fitted, so an overlay draws the head only: the triangles whose corners all
    lie, on the template, above a plane 18 mm under the chin landmark that rises 1 in 4
    toward the back of the head (it passes under the jaw and the skull) or on the face's
    skin (:func:`d3dface.fitting.facial_skin_faces`, whose underside of the chin dips below
    the plane).
    """
    template = model.template
    with torch.no_grad():
        chin = model.landmarks(template[None])[0, _CHIN_LANDMARK]
    height = template[:, 1] - (chin[1] - _NECK_CUT_BELOW_CHIN)
    keep = height > _NECK_CUT_SLOPE * (chin[2] - template[:, 2])
    keep[facial_skin_faces(model).reshape(-1)] = True
    return model.faces[keep[model.faces].all(dim=1)]


@torch.no_grad()
def draw_overlay(
    photo: np.ndarray, fit: FitResult, faces: torch.Tensor, alpha: float = 0.7
) -> np.ndarray:
    """Alpha-blend a shaded render of the fit onto the photo, at the photo's resolution.

    Vertices are coloured by :func:`d3dface.visibility.visibility_colours` (occluded parts
    red). Only the window around the projected triangles is rasterised.

    Args:
        photo: (H, W, 3) uint8, the photo the fit was made on.
        fit: the fit. faces: (F, 3) the triangles to draw (the model's, or
            :func:`head_faces` to leave the neck out).
        alpha: opacity of the mesh.

    Returns:
        (H, W, 3) uint8.
    """
    height, width = photo.shape[:2]
    if fit.camera.image_size != (height, width):
        raise ValueError(
            f"the photo is {width}x{height} but the fit was made on a "
            f"{fit.camera.image_size[1]}x{fit.camera.image_size[0]} photo"
        )
    points = fit.vertices_cam[None]
    uv = project(points, fit.camera)[0, torch.unique(faces), :2].numpy()
    x0, y0 = (max(math.floor(c) - 1, 0) for c in uv.min(axis=0))
    x1 = min(math.ceil(uv[:, 0].max()) + 1, width)
    y1 = min(math.ceil(uv[:, 1].max()) + 1, height)
    result = photo.copy()
    if x1 <= x0 or y1 <= y0:
        return result
    window = Camera(
        fx=fit.camera.fx,
        fy=fit.camera.fy,
        cx=float(fit.camera.cx) - x0,
        cy=float(fit.camera.cy) - y0,
        image_size=(y1 - y0, x1 - x0),
    )
    colours = torch.from_numpy(visibility_colours(fit.visibility)).float()[None]
    image, fragments = render(
        points, faces, window, albedo=colours, light_dir=torch.tensor([_LIGHT])
    )
    covered = fragments.mask[0].numpy()
    shaded = image[0].clamp(0.0, 1.0).numpy() * 255.0
    region = result[y0:y1, x0:x1].astype(np.float32)
    region[covered] = (1.0 - alpha) * region[covered] + alpha * shaded[covered]
    result[y0:y1, x0:x1] = np.round(region).astype(np.uint8)
    return result
