"""The fitted mesh drawn over its photo, coloured by visibility class."""

from __future__ import annotations

import math

import numpy as np
import torch

from d3dface.fitting import FitResult
from d3dface.render import Camera, project, render
from d3dface.visibility import visibility_colours

__all__ = ["draw_overlay"]

_LIGHT = (-0.8, 0.5, 0.6)  # camera space: from the upper left, oblique so the shape shows


@torch.no_grad()
def draw_overlay(
    photo: np.ndarray, fit: FitResult, faces: torch.Tensor, alpha: float = 0.7
) -> np.ndarray:
    """Alpha-blend a shaded render of the fit onto the photo, at the photo's resolution.

    Vertices are coloured by :func:`d3dface.visibility.visibility_colours` (occluded parts
    red). Only the window around the projected mesh is rasterised.

    Args:
        photo: (H, W, 3) uint8, the photo the fit was made on.
        fit: the fit. faces: (F, 3) the model's triangles.
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
    uv = project(points, fit.camera)[0, :, :2].numpy()
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
