"""Mesh files: PLY, OBJ and GLB (binary glTF) with per-vertex colours, via trimesh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import trimesh

__all__ = ["GLB_MATERIAL", "MESH_FORMATS", "export_mesh", "srgb_to_linear"]

MESH_FORMATS = (".ply", ".glb", ".obj")

GLB_MATERIAL = {
    "name": "skin",
    "pbrMetallicRoughness": {
        "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
        "metallicFactor": 0.0,
        "roughnessFactor": 0.8,
    },
}
"""The one material of a GLB: plain white, not metallic, fairly rough. glTF multiplies it by
the vertex colours; Blender's importer wires the colours into its shader only when a
material is there."""


def srgb_to_linear(colours: np.ndarray) -> np.ndarray:
    """sRGB-encoded colours (photo pixel values) in [0, 1] -> linear light in [0, 1], the
    IEC 61966-2-1 transfer function; any shape."""
    colours = np.clip(np.asarray(colours, dtype=np.float64), 0.0, 1.0)
    return np.where(colours <= 0.04045, colours / 12.92, ((colours + 0.055) / 1.055) ** 2.4)


def export_mesh(
    path: str | Path, vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray | None = None
) -> Path:
    """Write a triangle mesh; the format follows the suffix (``.ply``, ``.glb`` or ``.obj``).

    Args:
        path: output file. vertices: (V, 3) float, written as given (metres for face meshes).
        faces: (F, 3) int. colours: (V, 3) RGB float in [0, 1], sRGB-encoded as photo pixels
            are, or None.

    Returns:
        The path written. Vertex order is kept (no merging or reordering), so vertex i of the
        file is vertex i of the model. Every format carries smooth vertex normals (PLY's
        ``nx ny nz``, OBJ's ``vn``, glTF's ``NORMAL``), so importers such as Blender's shade
        the mesh smoothly instead of showing its triangles. PLY and OBJ store the colours as
        given (8 bits, sRGB, as their readers expect). GLB stores them as the ``COLOR_0``
        attribute in linear light (glTF's rule, so a viewer shows the same colour), with one
        plain material (:data:`GLB_MATERIAL`) that the colours tint.

    Raises:
        ValueError: an unsupported suffix, or vertices or colours that are not finite.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise ValueError(f"unsupported mesh format '{path.suffix}'; use one of {MESH_FORMATS}")
    vertices = np.asarray(vertices, dtype=np.float64)
    if not np.isfinite(vertices).all():
        raise ValueError(f"the mesh for '{path.name}' has NaN or infinite vertex positions")
    vertex_colors = None
    if colours is not None:
        colours = np.asarray(colours, dtype=np.float64)
        if not np.isfinite(colours).all():
            raise ValueError(f"the mesh for '{path.name}' has NaN or infinite vertex colours")
        if suffix == ".glb":
            colours = srgb_to_linear(colours)
        rgb = np.clip(np.round(colours * 255.0), 0, 255).astype(np.uint8)
        vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    mesh = trimesh.Trimesh(
        vertices=vertices,
        faces=np.asarray(faces, dtype=np.int64),
        vertex_colors=vertex_colors,
        process=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".glb":
        mesh.export(path, include_normals=True, tree_postprocessor=_with_material)
    elif suffix == ".ply":
        mesh.export(path, vertex_normal=True)
    else:
        mesh.export(path, include_normals=True)
    return path


def _with_material(tree: dict[str, Any]) -> None:
    """Give every primitive of a glTF ``tree`` (its JSON, edited in place) the
    :data:`GLB_MATERIAL`."""
    tree["materials"] = [GLB_MATERIAL]
    for mesh in tree.get("meshes", []):
        for primitive in mesh["primitives"]:
            primitive["material"] = 0
