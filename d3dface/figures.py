"""Pictures of a set of completions: a grid of shaded renders and the per-vertex spread map."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from d3dface.render import render_preview

__all__ = ["head_part", "heat_colours", "sample_grid", "spread_image", "vertex_spread_mm"]

_HEAT_STOPS = np.array([0.0, 0.35, 0.7, 1.0])
_HEAT_RGB = np.array([[0.85, 0.85, 0.85], [1.0, 0.82, 0.2], [0.9, 0.15, 0.1], [0.35, 0.0, 0.35]])
"""Colour stops of :func:`heat_colours`."""

_VIEWS = ((0.0, 0.0), (35.0, 0.0))
"""(yaw, pitch) degrees of the views drawn per sample: front, then turned to the left."""


def head_part(part_faces: Tensor, n_vertices: int) -> tuple[Tensor, Tensor]:
    """A part of a mesh as a mesh of its own, for pictures framed on it (e.g. the head of
    :func:`d3dface.overlay.head_faces`, so that previews frame the face, not the shoulders).

    Args:
        part_faces: (F', 3) the part's triangles, indices into the whole mesh.
        n_vertices: V, the whole mesh's vertex count.

    Returns:
        ``keep`` (V,) bool, the vertices the part uses, and ``part_faces`` re-indexed into
        ``vertices[keep]``, (F', 3).
    """
    keep = torch.zeros(n_vertices, dtype=torch.bool, device=part_faces.device)
    keep[part_faces.reshape(-1)] = True
    new_index = torch.cumsum(keep.long(), 0) - 1
    return keep, new_index[part_faces]


def vertex_spread_mm(samples: Tensor) -> Tensor:
    """Per-vertex spread of samples (N, V, 3) metres: RMS distance to their mean, (V,) mm."""
    centred = samples.double() - samples.double().mean(dim=0, keepdim=True)
    return (centred.pow(2).sum(-1).mean(0).sqrt() * 1000.0).float()


def heat_colours(values: np.ndarray, vmax: float) -> np.ndarray:
    """(V,) non-negative values -> (V, 3) RGB in [0, 1], from light grey (0) through yellow
    and red to dark purple (``vmax`` and above); light at 0 so the shading stays readable."""
    scaled = np.clip(np.asarray(values, np.float64) / max(vmax, 1e-9), 0.0, 1.0)
    return np.stack(
        [np.interp(scaled, _HEAT_STOPS, _HEAT_RGB[:, channel]) for channel in range(3)], axis=1
    )


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner of an (H, W, 3) uint8 tile (a copy)."""
    tile = tile.copy()
    cv2.putText(tile, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (40, 40, 40), 1, cv2.LINE_AA)
    return tile


def sample_grid(
    samples: Tensor,
    faces: Tensor,
    tile: int = 256,
    columns: int = 4,
    colours: np.ndarray | None = None,
) -> np.ndarray:
    """Shaded renders of every sample, front and turned, labelled, in a grid.

    Args:
        samples: (N, V, 3) meshes, model space. faces: (F, 3).
        tile: side of one render in pixels. columns: samples per row.
        colours: optional (V, 3) vertex colours in [0, 1] shared by all samples.

    Returns:
        (rows * tile, columns * 2 * tile, 3) uint8 (two views per sample; rows =
        ceil(N / columns)); white where a row has fewer samples.
    """
    n = samples.shape[0]
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    width = len(_VIEWS) * tile
    grid = np.full((rows * tile, columns * width, 3), 255, np.uint8)
    for index in range(n):
        row, column = divmod(index, columns)
        views = [
            render_preview(samples[index], faces, (tile, tile), colours, yaw, pitch)
            for yaw, pitch in _VIEWS
        ]
        views[0] = _label(views[0], f"sample {index:02d}")
        grid[row * tile : (row + 1) * tile, column * width : (column + 1) * width] = np.hstack(
            views
        )
    return grid


def spread_image(mesh: Tensor, spread_mm: Tensor, faces: Tensor, tile: int = 384) -> np.ndarray:
    """The mesh coloured by per-vertex spread (:func:`heat_colours`, 0 to the 99th
    percentile) with a colour bar: front and turned views, (tile + 40, 2 * tile, 3) uint8.

    ``mesh`` (V, 3) model space; ``spread_mm`` (V,) millimetres; ``faces`` (F, 3).
    """
    values = spread_mm.detach().cpu().numpy()
    vmax = float(np.percentile(values, 99)) if values.size else 1.0
    vmax = max(vmax, 0.1)
    colours = heat_colours(values, vmax)
    views = [
        render_preview(mesh, faces, (tile, tile), torch.from_numpy(colours).float(), yaw, pitch)
        for yaw, pitch in _VIEWS
    ]
    picture = np.vstack([np.hstack(views), _colour_bar(2 * tile, 40, vmax)])
    return picture


def _colour_bar(width: int, height: int, vmax: float) -> np.ndarray:
    """(height, width, 3) uint8 legend: the colour map from 0 to ``vmax`` mm."""
    bar = np.full((height, width, 3), 255, np.uint8)
    left, right = 60, width - 90
    ramp = heat_colours(np.linspace(0.0, vmax, right - left), vmax)
    bar[6:22, left:right] = np.round(ramp * 255).astype(np.uint8)[None]
    font, colour = cv2.FONT_HERSHEY_SIMPLEX, (40, 40, 40)
    cv2.putText(bar, "0 mm", (8, 20), font, 0.45, colour, 1, cv2.LINE_AA)
    cv2.putText(bar, f"{vmax:.1f} mm", (right + 6, 20), font, 0.45, colour, 1, cv2.LINE_AA)
    cv2.putText(bar, "spread of the samples", (left, 37), font, 0.4, colour, 1, cv2.LINE_AA)
    return bar
