"""The terms of the stage-1 objective: landmarks, photometric, regularisation, smoothness.

Each function takes tensors and returns a scalar tensor; which landmarks and pixels count is
decided by the caller (visible ones only), so every term here sees data that may be used.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from torch import Tensor

__all__ = [
    "LANDMARK_GROUP_WEIGHTS",
    "landmark_groups",
    "landmark_loss",
    "landmark_weights",
    "photometric_loss",
    "region_albedo",
    "smoothness_loss",
    "smoothness_matrix",
    "uniform_laplacian",
]

LANDMARK_GROUP_WEIGHTS = {
    "face_oval": 0.35,
    "eyebrows": 0.5,
    "eyes": 3.0,
    "lips": 1.8,
    "irises": 1.0,
    "other": 1.0,
}
"""Weight of each mediapipe landmark group, about 1 / (error of the landmark embedding)^2 on
synthetic renders (30 renders, seeds 60000+, 512 px): RMS error face oval 7.3 px, eyebrows
6.0, eyes 2.5, lips 3.3, irises 1.7, all other landmarks 4.4 (weight 1). Irises stay at 1: the
renders look straight ahead, but the model has no gaze, so on photos they are less reliable."""


def landmark_groups() -> dict[str, np.ndarray]:
    """Indices of mediapipe's landmark groups (face oval, eyebrows, eyes, lips, irises)."""
    from mediapipe.python.solutions import face_mesh_connections as mesh

    def members(connections: frozenset[tuple[int, int]]) -> np.ndarray:
        return np.unique(np.array(sorted(connections)).ravel())

    return {
        "face_oval": members(mesh.FACEMESH_FACE_OVAL),
        "eyebrows": members(mesh.FACEMESH_LEFT_EYEBROW | mesh.FACEMESH_RIGHT_EYEBROW),
        "eyes": members(mesh.FACEMESH_LEFT_EYE | mesh.FACEMESH_RIGHT_EYE),
        "lips": members(mesh.FACEMESH_LIPS),
        "irises": np.arange(468, 478),
    }


def landmark_weights() -> np.ndarray:
    """Per-landmark weights ``(478,)`` from :data:`LANDMARK_GROUP_WEIGHTS`, mean 1."""
    weights = np.full(478, LANDMARK_GROUP_WEIGHTS["other"])
    for name, members in landmark_groups().items():
        weights[members] = LANDMARK_GROUP_WEIGHTS[name]
    return weights / weights.mean()


def landmark_loss(
    predicted: Tensor, target: Tensor, weights: Tensor, scale: float, robust: float = 0.0
) -> Tensor:
    """Weighted sum of squared landmark distances, in units of ``scale`` pixels.

    ``predicted``, ``target`` (N, 2) pixels; ``weights`` (N,) (zero for landmarks that must not
    count). Summing (not averaging) makes fewer visible landmarks weigh less against the prior.
    With ``robust`` > 0 (pixels) each squared distance ``d^2`` becomes the Cauchy loss
    ``c^2 log(1 + d^2 / c^2)``, ``c = robust``: the same for small distances, but a landmark
    far off pulls less the farther it is.
    """
    squared = ((predicted - target) / scale).pow(2).sum(-1)
    if robust > 0:
        cauchy = (robust / scale) ** 2
        squared = cauchy * torch.log1p(squared / cauchy)
    return (weights * squared).sum()


def photometric_loss(rendered: Tensor, target: Tensor, valid: Tensor, truncation: float) -> Tensor:
    """Mean truncated absolute colour difference over the valid pixels.

    ``rendered``, ``target`` (H, W, 3) in [0, 1]; ``valid`` (H, W) bool. Each pixel's error is
    its mean absolute RGB difference, capped at ``truncation``: pixels that no albedo and
    lighting can explain (hair over the forehead, a beard, glasses, an unmasked occluder's
    edge) cost a constant and pull on nothing. Zero when no pixel is valid.
    """
    difference = (rendered[valid] - target[valid]).abs().mean(-1)
    return difference.clamp(max=truncation).sum() / valid.sum().clamp(min=1)


def region_albedo(colours: Tensor, region_weights: Tensor) -> Tensor:
    """Per-vertex albedo (V, 3) from per-region colours (R, 3) and weights (R, V)."""
    return region_weights.T @ colours


def uniform_laplacian(faces: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    """Sparse uniform graph Laplacian (V, V): ``(L x)_v = x_v - mean of v's neighbours``."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.concatenate([edges, edges[:, ::-1]]), axis=0)
    degree = np.maximum(np.bincount(edges[:, 0], minlength=n_vertices), 1)
    neighbours = sparse.csr_matrix(
        (1.0 / degree[edges[:, 0]], (edges[:, 0], edges[:, 1])), shape=(n_vertices, n_vertices)
    )
    return sparse.identity(n_vertices, format="csr") - neighbours


def smoothness_matrix(laplacian: sparse.csr_matrix, basis: Tensor) -> Tensor:
    """Quadratic form of the smoothness term over a linear displacement basis.

    ``basis`` (K, V, 3) metres: the displacement is ``sum_k c_k basis[k]``. Returns (K, K) ``Q``
    with ``c^T Q c`` = the mean over vertices of the squared Laplacian of the displacement in
    millimetres, computed once in float64 (so the fit's smoothness term needs no sparse
    product, whose multi-threaded gradient is not bitwise reproducible).
    """
    n_basis, n_vertices, _ = basis.shape
    columns = basis.double().numpy().transpose(1, 0, 2).reshape(n_vertices, -1) * 1000.0
    smoothed = (laplacian @ columns).reshape(n_vertices, n_basis, 3).transpose(1, 0, 2)
    flat = smoothed.reshape(n_basis, -1)
    gram = flat @ flat.T / n_vertices
    return torch.from_numpy(gram).float()


def smoothness_loss(coefficients: Tensor, matrix: Tensor) -> Tensor:
    """``c^T Q c`` for coefficients (K,) and the (K, K) matrix of :func:`smoothness_matrix`."""
    return coefficients @ matrix @ coefficients
