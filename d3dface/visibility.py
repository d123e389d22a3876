"""Per-vertex visibility classes of a fitted face in its photo.

- ``VISIBLE``: the camera sees the vertex (inside the photo, front facing, in front in the
  z-buffer) and it projects onto an unoccluded photo pixel;
- ``OCCLUDED``: the camera would see it, but it projects into the occlusion mask;
- ``SELF_HIDDEN``: back facing, behind other parts of the head, or outside the photo.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from d3dface.render import Camera, project, rasterize, vertex_visibility

__all__ = [
    "OCCLUDED",
    "SELF_HIDDEN",
    "VISIBILITY_COLOURS",
    "VISIBILITY_NAMES",
    "VISIBLE",
    "classify_vertices",
    "scaled_camera",
    "visibility_colours",
]

VISIBLE, OCCLUDED, SELF_HIDDEN = 0, 1, 2
VISIBILITY_NAMES = ("visible", "occluded", "self_hidden")
VISIBILITY_COLOURS = np.array([[0.85, 0.85, 0.85], [0.95, 0.15, 0.12], [0.55, 0.55, 0.6]])
"""RGB in [0, 1] per class, indexed by the class constant: light grey, red, blue-grey."""

_ZBUFFER_MAX_SIDE = 640
"""The z-buffer for visibility is drawn at most this many pixels across (the photo's aspect);
finer buffers cost time and change the classes only along silhouettes."""


def scaled_camera(camera: Camera, factor: float) -> Camera:
    """The same view with the image resized by ``factor`` (pixel coordinates scale with it)."""
    height, width = camera.image_size
    return Camera(
        fx=camera.fx * factor,
        fy=camera.fy * factor,
        cx=camera.cx * factor,
        cy=camera.cy * factor,
        image_size=(max(round(height * factor), 1), max(round(width * factor), 1)),
        orthographic=camera.orthographic,
    )


@torch.no_grad()
def classify_vertices(
    vertices_cam: Tensor,
    faces: Tensor,
    camera: Camera,
    occluded: np.ndarray | None = None,
) -> np.ndarray:
    """Visibility class of each vertex.

    Args:
        vertices_cam: ``(V, 3)`` camera-space vertices (metres).
        faces: ``(F, 3)`` triangles.
        camera: the photo's camera (pixels of the full photo).
        occluded: ``(H, W)`` bool occlusion mask of the photo (True = hidden), or None.

    Returns:
        ``(V,)`` int8 array of :data:`VISIBLE`, :data:`OCCLUDED` or :data:`SELF_HIDDEN`.
    """
    height, width = camera.image_size
    factor = min(1.0, _ZBUFFER_MAX_SIDE / max(height, width))
    small = scaled_camera(camera, factor)
    points = vertices_cam[None]
    screen = project(points, small)
    fragments = rasterize(
        screen, faces, small.image_size, perspective_correct=not small.orthographic
    )
    seen = vertex_visibility(screen, faces, fragments, points, orthographic=small.orthographic)
    seen = seen[0].numpy()
    classes = np.where(seen, VISIBLE, SELF_HIDDEN).astype(np.int8)
    if occluded is not None:
        u, v = project(points, camera)[0, :, :2].numpy().T
        cols = np.clip(np.floor(u).astype(np.int64), 0, width - 1)
        rows = np.clip(np.floor(v).astype(np.int64), 0, height - 1)
        classes[seen & occluded[rows, cols]] = OCCLUDED
    return classes


def visibility_colours(classes: np.ndarray) -> np.ndarray:
    """Per-vertex RGB (V, 3) float in [0, 1] of visibility classes (V,), see
    :data:`VISIBILITY_COLOURS`."""
    return VISIBILITY_COLOURS[classes]
