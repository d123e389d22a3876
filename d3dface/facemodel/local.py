"""Local models: one PCA per face region, fitted to meshes sampled from the global model.

The global model couples the whole face (one identity coefficient moves nose and chin
together); the per-region PCAs are independent, so a global fit plus local coefficients can
match regional detail that no single global coefficient vector explains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LocalModels:
    """``basis`` (R, L, V, 3) scaled so coefficients are N(0, 1); ``variance_kept`` (R,)."""

    basis: Tensor
    variance_kept: Tensor


def fit_local_models(
    coefficients: Tensor,
    global_basis: Tensor,
    region_weights: Tensor,
    n_components: int,
    support_threshold: float = 0.01,
) -> LocalModels:
    """Per-region PCA of meshes sampled from a linear global model.

    The sampled offsets are ``coefficients @ global_basis``; their PCA is computed exactly from
    a QR factorisation of the centred coefficients (S x K) and an SVD of the small (K x D_r)
    matrix ``R @ basis_r``, which avoids the (S x D_r) SVD of the offsets themselves.

    Args:
        coefficients: (S, K) sampled global coefficients (identity and expression, concatenated).
        global_basis: (K, V, 3) the matching modes, metres.
        region_weights: (R, V) soft region weights.
        n_components: L, components kept per region.
        support_threshold: a vertex belongs to a region's PCA where its weight exceeds this.

    Returns:
        LocalModels with basis (R, L, V, 3) (zero outside each region's support, each
        component scaled by its standard deviation) and the fraction of each region's sampled
        variance the L components keep.
    """
    n_samples = coefficients.shape[0]
    n_vertices = global_basis.shape[1]
    centred = (coefficients - coefficients.mean(dim=0, keepdim=True)).double()
    _, triangular = torch.linalg.qr(centred)  # centred = Q @ triangular, Q orthonormal
    bases, kept = [], []
    for weights in region_weights:
        support = weights > support_threshold
        region_basis = global_basis[:, support].reshape(global_basis.shape[0], -1).double()
        _, singular, right = torch.linalg.svd(triangular @ region_basis, full_matrices=False)
        variance = singular**2 / (n_samples - 1)
        components = right[:n_components] * variance[:n_components, None].sqrt()
        basis = torch.zeros(n_components, n_vertices, 3, dtype=torch.float64)
        basis[:, support] = components.reshape(n_components, -1, 3)
        bases.append(basis)
        kept.append(variance[:n_components].sum() / variance.sum())
    return LocalModels(basis=torch.stack(bases).float(), variance_kept=torch.stack(kept).float())
