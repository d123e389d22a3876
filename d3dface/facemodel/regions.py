"""Named face regions as soft per-vertex weights.

Each vertex first gets one hard label from anatomical anchors (the 68 Multi-PIE landmark
positions on the template): the forehead is what lies above the brows, the other facial
regions take the face vertices nearest to their anchor points, and everything outside the
face (scalp, ears, neck) is ``rest``. The one-hot labels are then diffused over the mesh graph
so weights blend smoothly across region borders, and renormalised so each vertex's weights
sum to 1. Subject's left is +x (the model looks along +z).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

REGION_NAMES = (
    "forehead",
    "eye_left",
    "eye_right",
    "nose",
    "mouth",
    "cheek_left",
    "cheek_right",
    "chin",
    "rest",
)

# Multi-PIE 68-point landmark ids used as anchors of each region (subject's left = +x).
_ANCHOR_LANDMARKS = {
    "eye_right": list(range(36, 42)) + list(range(17, 22)),
    "eye_left": list(range(42, 48)) + list(range(22, 27)),
    "nose": list(range(27, 36)),
    "mouth": list(range(48, 68)),
    "chin": list(range(6, 11)),
    "cheek_right": list(range(1, 6)),
    "cheek_left": list(range(11, 16)),
}
# Extra anchors halfway between two landmarks (cheek centres, the chin below the lip).
_ANCHOR_MIDPOINTS = {
    "cheek_right": [(2, 31), (4, 48), (1, 36), (3, 49)],
    "cheek_left": [(14, 35), (12, 54), (15, 45), (13, 53)],
    "chin": [(57, 8), (58, 7), (56, 9)],
}


def anchor_points(landmarks68: np.ndarray) -> dict[str, np.ndarray]:
    """Anchor positions of each facial region: (68, 3) landmarks -> {region: (A, 3)}."""
    anchors = {name: landmarks68[ids] for name, ids in _ANCHOR_LANDMARKS.items()}
    for name, pairs in _ANCHOR_MIDPOINTS.items():
        mids = np.stack([(landmarks68[a] + landmarks68[b]) / 2 for a, b in pairs])
        anchors[name] = np.concatenate([anchors[name], mids])
    return anchors


def hard_labels(
    vertices: np.ndarray,
    landmarks68: np.ndarray,
    face_area: np.ndarray,
    eyeball_side: np.ndarray,
) -> np.ndarray:
    """One region index per vertex.

    Args:
        vertices: (V, 3) template positions.
        landmarks68: (68, 3) Multi-PIE landmark positions on the template.
        face_area: (V,) bool, vertices of the facial surface (not scalp, ears, neck).
        eyeball_side: (V,) int, +1 left eyeball, -1 right eyeball, 0 skin.

    Returns:
        (V,) int index into ``REGION_NAMES``.
    """
    index = {name: i for i, name in enumerate(REGION_NAMES)}
    labels = np.full(len(vertices), index["rest"])
    anchors = anchor_points(landmarks68)
    names = list(anchors)
    distances = np.stack(
        [
            np.linalg.norm(vertices[:, None, :] - anchors[n][None], axis=-1).min(axis=1)
            for n in names
        ],
        axis=1,
    )
    nearest = np.array([index[n] for n in names])[distances.argmin(axis=1)]
    brows = landmarks68[17:27]
    order = np.argsort(brows[:, 0])
    brow_top = np.interp(vertices[:, 0], brows[order, 0], brows[order, 1])
    eye_size = np.linalg.norm(landmarks68[36] - landmarks68[39])
    above_brows = vertices[:, 1] > brow_top + 0.35 * eye_size
    jaw = landmarks68[:17]
    below_jaw = vertices[:, 1] < landmarks68[8, 1] - 0.3 * eye_size
    outside_jaw = np.abs(vertices[:, 0]) > np.abs(jaw[[0, 16], 0]).max()
    facial = face_area & ~below_jaw & ~outside_jaw
    labels[facial] = nearest[facial]
    labels[face_area & above_brows & ~outside_jaw] = index["forehead"]
    labels[eyeball_side > 0] = index["eye_left"]
    labels[eyeball_side < 0] = index["eye_right"]
    return labels


def soft_weights(
    labels: np.ndarray, faces: np.ndarray, n_regions: int, iterations: int
) -> np.ndarray:
    """Diffuse one-hot labels over the mesh graph: (V,), (F, 3) -> (R, V), columns sum to 1.

    Each iteration replaces a vertex's weights by the mean over itself and its neighbours, so
    borders blend over about ``iterations`` edges on either side.
    """
    n_vertices = len(labels)
    rows = np.concatenate([faces[:, [0, 1, 2]].ravel(), np.arange(n_vertices)])
    cols = np.concatenate([faces[:, [1, 2, 0]].ravel(), np.arange(n_vertices)])
    adjacency = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), (n_vertices,) * 2).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    averaging = sparse.diags(1.0 / np.asarray(adjacency.sum(axis=1)).ravel()) @ adjacency
    weights = np.eye(n_regions)[labels]  # (V, R)
    for _ in range(iterations):
        weights = averaging @ weights
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.T.astype(np.float32)
