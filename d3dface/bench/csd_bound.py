"""How near the truth can the closest of N samples get? A reference for the benchmark's CSD.

The diversity benchmark's faces are drawn from the face model itself: identity coefficients
N(0, s^2) and sparse expression weights (:func:`d3dface.facemodel.landmark_embedding.render_view`).
Suppose an oracle knew that prior and saw the truly visible vertices exactly up to Gaussian
noise. Its posterior over the coefficients is then Gaussian (the expression weights taken with
their mean and variance), and so is the error ``e`` of the posterior mean on the truly
occluded vertices, with a covariance that does not depend on the observed values. The best
set of N completions for that oracle is the posterior mean plus the N-point quantiser of
``e``'s distribution, found here by k-means on draws of ``e`` and scored on other draws.

:func:`csd_bound` gives the two figures: the expected distance of the posterior mean from
the truth on the occluded vertices (what a single best guess achieves) and the expected
distance of the closest of the N best samples (the lowest CSD any N samples can expect).
Their ratio says how much a set of samples can gain over one guess on such faces.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.vq import kmeans2

from d3dface.facemodel.landmark_embedding import (
    EXPRESSION_MAX,
    EXPRESSION_PROBABILITY,
    IDENTITY_SCALE,
)
from d3dface.facemodel.model import FaceModel

__all__ = ["csd_bound"]


def _prior_basis(model: FaceModel) -> np.ndarray:
    """(V, 3, K) the global basis scaled so that its coefficients have unit prior variance."""
    identity = model.identity_basis.double().numpy() * IDENTITY_SCALE
    weight_mean = EXPRESSION_PROBABILITY * EXPRESSION_MAX / 2.0
    weight_variance = EXPRESSION_PROBABILITY * EXPRESSION_MAX**2 / 3.0 - weight_mean**2
    expression = model.expression_basis.double().numpy()
    basis = np.concatenate([identity, expression * np.sqrt(weight_variance)], axis=0)
    return np.moveaxis(basis, 0, -1)


def csd_bound(
    model: FaceModel,
    visible: torch.Tensor,
    occluded: torch.Tensor,
    n_samples: int,
    noise_m: float = 0.001,
    draws: int = 4000,
    seed: int = 0,
) -> dict[str, float]:
    """The oracle's single-guess error and best-N closest-sample distance, mm.

    Args:
        model: the face model the faces were drawn from.
        visible: (V,) bool, the truly visible vertices the oracle observes.
        occluded: (V,) bool, the truly occluded vertices CSD is measured on.
        n_samples: N, the size of the sample set.
        noise_m: standard deviation of the observation noise per coordinate, metres.
        draws: draws of the error for k-means, and as many again to score the result.
        seed: seed of the draws and of k-means.

    Returns:
        ``posterior_mean_mm`` and ``best_set_mm``, both expectations over faces.
    """
    basis = _prior_basis(model)
    seen = basis[visible.numpy()].reshape(-1, basis.shape[-1])
    hidden = basis[occluded.numpy()].reshape(-1, basis.shape[-1])
    precision = np.eye(seen.shape[1]) + seen.T @ seen / noise_m**2
    factor = np.linalg.cholesky(np.linalg.inv(precision))
    # e = hidden @ factor @ xi, xi ~ N(0, I); distances between such errors are those of
    # the coordinates xi @ (S W^T)^T with hidden @ factor = U S W^T, in K numbers instead of 3n
    _, singular, right = np.linalg.svd(hidden @ factor, full_matrices=False)
    rng = np.random.default_rng(seed)
    coordinates = rng.standard_normal((2 * draws, len(singular))) @ (right.T * singular)
    train, test = coordinates[:draws], coordinates[draws:]
    scale = 1000.0 / np.sqrt(int(occluded.sum()))  # metres per root vertex -> mm
    centres, _ = kmeans2(train, n_samples, minit="++", seed=seed, iter=30)
    nearest = np.min(np.linalg.norm(test[:, None, :] - centres[None], axis=2), axis=1)
    return {
        "posterior_mean_mm": float(np.linalg.norm(test, axis=1).mean() * scale),
        "best_set_mm": float(nearest.mean() * scale),
    }
