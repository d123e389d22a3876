"""Reading the ICT Face Model archive and deriving the project's decimated topology.

The ICT Face Model (USC ICT, MIT licence) is read from ``ict_face_model.npz`` (see the README
beside it): centimetres, +y up, +z out of the face. The project keeps the face + head/neck
surface and the two eyeballs, decimates each by half-edge collapse (every kept vertex *is* an
ICT vertex, so every mode carries over unchanged) and converts to metres.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ICT_LICENCE = (
    "ICT Face Model, Copyright (c) 2020 USC Institute for Creative Technologies, MIT licence "
    "(https://github.com/ICT-VGL/ICT-FaceKit)"
)
CM_TO_M = 0.01

# Polygon ranges of the parts the project keeps (from the model's documentation).
FACE_HEAD_POLYGONS = slice(0, 11144)  # face area + head and neck
EYEBALL_POLYGONS = {"eye_left": slice(21496, 23094), "eye_right": slice(23094, 24692)}
_KEYS = ("neutral", "identity_modes", "expression_modes", "expression_names", "polygons")


@dataclass(frozen=True)
class IctArchive:
    """The ICT arrays the project uses (centimetres, full 26,719-vertex topology)."""

    neutral: np.ndarray  # (N, 3)
    identity_modes: np.ndarray  # (100, N, 3)
    expression_modes: np.ndarray  # (53, N, 3)
    expression_names: list[str]
    polygons: np.ndarray  # (P, 4), -1 pads triangles
    landmarks68: np.ndarray  # (68,) Multi-PIE landmark vertex indices


def load_ict(directory: str | Path) -> IctArchive:
    """Read ``ict_face_model.npz`` and ``vertex_indices.json`` from ``directory``."""
    directory = Path(directory)
    archive_path = directory / "ict_face_model.npz"
    if not archive_path.is_file():
        raise FileNotFoundError(
            f"'{archive_path}' not found; pass --ict with the folder holding the ICT Face Model "
            "archive (../shared/ict_facekit in this project)"
        )
    try:
        with np.load(archive_path) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise ValueError(f"'{archive_path}' lacks arrays {missing}")
            arrays = {k: data[k] for k in _KEYS}
    except (OSError, EOFError) as err:
        raise ValueError(f"'{archive_path}' is not a readable NumPy archive: {err}") from err
    indices = json.loads((directory / "vertex_indices.json").read_text())
    return IctArchive(
        neutral=arrays["neutral"].astype(np.float64),
        identity_modes=arrays["identity_modes"].astype(np.float32),
        expression_modes=arrays["expression_modes"].astype(np.float32),
        expression_names=[str(n) for n in arrays["expression_names"]],
        polygons=arrays["polygons"].astype(np.int64),
        landmarks68=np.asarray(indices["idx_to_landmark_verts"], dtype=np.int64),
    )


def triangulate(polygons: np.ndarray) -> np.ndarray:
    """Split quads (a, b, c, d) into (a, b, c) + (a, c, d); (P, 4) -> (T, 3)."""
    quads = polygons[:, 3] >= 0
    return np.concatenate([polygons[:, :3], polygons[quads][:, [0, 2, 3]]])


def decimate_part(
    points: np.ndarray, triangles: np.ndarray, target_faces: int
) -> tuple[np.ndarray, np.ndarray]:
    """Quadric half-edge-collapse decimation that keeps original vertices.

    Args:
        points: (N, 3) vertex positions of the full mesh.
        triangles: (T, 3) triangles of one part (indices into ``points``).
        target_faces: triangle count to reduce to.

    Returns:
        kept: (K,) indices into ``points`` of the surviving vertices.
        faces: (T', 3) triangles indexing into ``kept``.
    """
    import pymeshlab

    used = np.unique(triangles)
    local = np.searchsorted(used, triangles)
    mesh_set = pymeshlab.MeshSet()
    mesh_set.add_mesh(pymeshlab.Mesh(points[used], local))
    mesh_set.meshing_decimation_quadric_edge_collapse(
        targetfacenum=int(target_faces),
        optimalplacement=False,  # collapse onto an existing vertex: positions stay ICT's
        preservenormal=True,  # refuse collapses that flip a face
        preserveboundary=False,
        planarquadric=True,
        qualitythr=0.5,
        autoclean=True,
    )
    result = mesh_set.current_mesh()
    distance, nearest = cKDTree(points[used]).query(result.vertex_matrix())
    if distance.max() > 1e-9 or len(np.unique(nearest)) != len(nearest):
        raise RuntimeError("decimation moved vertices; cannot keep the ICT correspondence")
    return used[nearest], result.face_matrix().astype(np.int64)


@dataclass(frozen=True)
class Topology:
    """The decimated mesh: ``source_index`` (V,) ICT vertex of each vertex; ``faces`` (F, 3)."""

    source_index: np.ndarray
    faces: np.ndarray
    part: np.ndarray  # (V,) 0 = face/head, 1 = left eyeball, 2 = right eyeball


def build_topology(ict: IctArchive, face_head_faces: int, eyeball_faces: int) -> Topology:
    """Decimate the face+head surface and each eyeball; concatenate into one mesh."""
    parts = [(FACE_HEAD_POLYGONS, face_head_faces)] + [
        (polys, eyeball_faces) for polys in EYEBALL_POLYGONS.values()
    ]
    kept_all, faces_all, part_all = [], [], []
    offset = 0
    for part_id, (polys, target) in enumerate(parts):
        kept, faces = decimate_part(ict.neutral, triangulate(ict.polygons[polys]), target)
        kept_all.append(kept)
        faces_all.append(faces + offset)
        part_all.append(np.full(len(kept), part_id))
        offset += len(kept)
    return Topology(
        source_index=np.concatenate(kept_all),
        faces=np.concatenate(faces_all),
        part=np.concatenate(part_all),
    )
