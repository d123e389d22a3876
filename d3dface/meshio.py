"""Mesh files: PLY and GLB (binary glTF) with per-vertex colours, via trimesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

__all__ = ["MESH_FORMATS", "export_mesh"]

MESH_FORMATS = (".ply", ".glb", ".obj")


def export_mesh(
    path: str | Path, vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray | None = None
) -> Path:
    """Write a triangle mesh; the format follows the suffix (``.ply``, ``.glb`` or ``.obj``).

    Args:
        path: output file. vertices: (V, 3) float, written as given (metres for face meshes).
        faces: (F, 3) int. colours: (V, 3) RGB float in [0, 1], or None.

    Returns:
        The path written. Vertex order is kept (no merging or reordering), so vertex i of the
        file is vertex i of the model; GLB stores the colours as the ``COLOR_0`` attribute,
        which Blender imports as a colour attribute.
    """
    path = Path(path)
    if path.suffix.lower() not in MESH_FORMATS:
        raise ValueError(f"unsupported mesh format '{path.suffix}'; use one of {MESH_FORMATS}")
    vertex_colors = None
    if colours is not None:
        rgb = np.clip(np.round(np.asarray(colours) * 255.0), 0, 255).astype(np.uint8)
        vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    mesh = trimesh.Trimesh(
        vertices=np.asarray(vertices, dtype=np.float64),
        faces=np.asarray(faces, dtype=np.int64),
        vertex_colors=vertex_colors,
        process=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path
