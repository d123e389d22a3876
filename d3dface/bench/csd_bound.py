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

:func:`anchored_oracle` is the same oracle made to observe what the methods observe: the
stage-1 fit's visible vertices (aligned to the truth), with noise ``noise_m`` that sets how
loosely its samples hold them. Its posterior mean and best N samples are scored against the
actual truth of one face, beside their spread where the face is visible and where it is hidden
(ASD-V, ASD-O). It answers: with the exact prior of the faces, how much nearer than the fit
can N samples get while they agree with the fit where the face is visible? Given the fit in its
own frame and the similarity that carries it onto the truth (``to_truth``), the oracle
conditions in the fit's frame, as any method must, and its samples are carried onto the truth
by that similarity before they are scored, as the methods' samples are: what the prior gains
when it does not know the truth's frame.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.vq import kmeans2

from d3dface.bench.alignment import apply_similarity
from d3dface.facemodel.landmark_embedding import (
    EXPRESSION_MAX,
    EXPRESSION_PROBABILITY,
    IDENTITY_SCALE,
)
from d3dface.facemodel.model import FaceModel
from d3dface.metrics import average_self_distance, closest_sample_distance, mesh_distance

__all__ = ["anchored_oracle", "csd_bound"]

_MM = 1000.0


def _prior(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """The faces' prior: mean mesh (V, 3) and basis (V, 3, K) scaled so that its
    coefficients have zero mean and unit variance."""
    identity = model.identity_basis.double().numpy() * IDENTITY_SCALE
    weight_mean = EXPRESSION_PROBABILITY * EXPRESSION_MAX / 2.0
    weight_variance = EXPRESSION_PROBABILITY * EXPRESSION_MAX**2 / 3.0 - weight_mean**2
    expression = model.expression_basis.double().numpy()
    mean = model.template.double().numpy() + weight_mean * expression.sum(axis=0)
    basis = np.concatenate([identity, expression * np.sqrt(weight_variance)], axis=0)
    return mean, np.moveaxis(basis, 0, -1)


def _posterior_factor(seen: np.ndarray, noise_m: float) -> np.ndarray:
    """(K, K) a square root of the coefficients' posterior covariance, given the vertex
    coordinates ``seen`` (3n, K) of the basis observed with noise ``noise_m`` per coordinate."""
    precision = np.eye(seen.shape[1]) + seen.T @ seen / noise_m**2
    return np.linalg.cholesky(np.linalg.inv(precision))


def _quantiser(
    coordinates: np.ndarray, n_samples: int, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The N-point quantiser of ``coordinates @ xi``, xi ~ N(0, I_K), for a (K, M) map:
    the centres (N, M), by k-means on ``draws`` draws, and as many other draws (draws, M)
    to score them on."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((2 * draws, coordinates.shape[0])) @ coordinates
    centres, _ = kmeans2(points[:draws], n_samples, minit="++", seed=seed, iter=30)
    return centres, points[draws:]


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
    _, basis = _prior(model)
    seen = basis[visible.numpy()].reshape(-1, basis.shape[-1])
    hidden = basis[occluded.numpy()].reshape(-1, basis.shape[-1])
    factor = _posterior_factor(seen, noise_m)
    # e = hidden @ factor @ xi, xi ~ N(0, I); distances between such errors are those of
    # the coordinates xi @ (S W^T)^T with hidden @ factor = U S W^T, in K numbers instead of 3n
    _, singular, right = np.linalg.svd(hidden @ factor, full_matrices=False)
    centres, test = _quantiser(right.T * singular, n_samples, draws, seed)
    scale = _MM / np.sqrt(int(occluded.sum()))  # metres per root vertex -> mm
    nearest = np.min(np.linalg.norm(test[:, None, :] - centres[None], axis=2), axis=1)
    return {
        "posterior_mean_mm": float(np.linalg.norm(test, axis=1).mean() * scale),
        "best_set_mm": float(nearest.mean() * scale),
    }


def anchored_oracle(
    model: FaceModel,
    observed: np.ndarray,
    truth: np.ndarray,
    visible: np.ndarray,
    occluded: np.ndarray,
    n_samples: int,
    noise_m: float,
    draws: int = 4000,
    seed: int = 0,
    to_truth: tuple[np.ndarray, float, np.ndarray] | None = None,
) -> dict[str, float]:
    """The exact-prior oracle observing ``observed`` where visible, scored on one face, mm.

    Its samples are the posterior mean plus the N-point quantiser of the posterior error on
    the occluded vertices (as in :func:`csd_bound`). Each is carried over the whole face by
    the most probable coefficients that give its occluded part (least norm in the posterior's
    whitened coordinates), so that their spread where the face is visible can be measured.

    Args:
        model: the face model the face was drawn from.
        observed: (V, 3) what the oracle observes on ``visible`` (the fit, aligned to the truth
            there, or in its own frame with ``to_truth``), metres.
        truth: (V, 3) the true mesh, metres.
        visible: (V,) bool, the vertices it observes and ASD-V's.
        occluded: (V,) bool, the vertices CSD and ASD-O are measured on.
        n_samples: N >= 2.
        noise_m: standard deviation of the observation noise per coordinate, metres: how
            loosely the samples hold ``observed``.
        draws: draws of the posterior error for k-means.
        seed: seed of the draws and of k-means.
        to_truth: None when ``observed`` is in the truth's frame; else the similarity
            (rotation (3, 3), scale, shift (3,), as
            :func:`~d3dface.bench.alignment.similarity_transform` gives it) that carries
            ``observed``'s frame onto the truth's, applied to the guess and the samples
            before they are scored.

    Returns:
        ``posterior_mean_mm`` (its single guess's distance from the truth on ``occluded``),
        ``best_set_mm`` (CSD of its N samples), ``asd_v_mm`` and ``asd_o_mm``.
    """
    if n_samples < 2:
        raise ValueError("the anchored oracle needs N >= 2 samples to measure their spread")
    mean, basis = _prior(model)
    seen = basis[visible].reshape(-1, basis.shape[-1])
    hidden = basis[occluded].reshape(-1, basis.shape[-1])
    factor = _posterior_factor(seen, noise_m)
    offset = (observed[visible] - mean[visible]).reshape(-1)
    coefficients = factor @ (factor.T @ (seen.T @ offset)) / noise_m**2
    guess = mean[occluded] + (hidden @ coefficients).reshape(-1, 3)
    # the quantiser in coordinates y = S W^T xi of hidden @ factor = U S W^T; a centre y
    # is reached by the least-norm xi = W S^-1 y, i.e. coefficients factor @ xi
    _, singular, right = np.linalg.svd(hidden @ factor, full_matrices=False)
    keep = singular > singular[0] * 1e-9
    centres, _ = _quantiser(right[keep].T * singular[keep], n_samples, draws, seed)
    offsets = factor @ right[keep].T @ (centres / singular[keep]).T  # (K, N)
    hidden_samples = (hidden @ offsets).T.reshape(n_samples, -1, 3) + guess
    # ASD-V needs only the samples' differences where visible, hence their offsets alone
    seen_offsets = (seen @ offsets).T.reshape(n_samples, -1, 3)
    if to_truth is not None:
        rotation, scale, _ = to_truth
        guess = apply_similarity(guess, to_truth)
        hidden_samples = apply_similarity(hidden_samples, to_truth)
        seen_offsets = scale * seen_offsets @ rotation.T  # differences: no shift
    guess, hidden_samples = torch.from_numpy(guess), torch.from_numpy(hidden_samples)
    seen_offsets = torch.from_numpy(seen_offsets)
    target = torch.from_numpy(truth[occluded])
    return {
        "posterior_mean_mm": float(mesh_distance(guess, target)) * _MM,
        "best_set_mm": closest_sample_distance(hidden_samples, target),
        "asd_v_mm": average_self_distance(seen_offsets),
        "asd_o_mm": average_self_distance(hidden_samples),
    }
