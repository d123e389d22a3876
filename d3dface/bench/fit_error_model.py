"""How near the truth can N samples around *this* stage-1 fit get? A second CSD reference.

The oracle of :mod:`d3dface.bench.csd_bound` sees the truly visible vertices up to 1 mm noise.
The stage-1 fit sees a photo: on the benchmark's renders it is off by about 1.5 mm even where
the face is visible, and that error carries into the hidden part, where samples that agree
with the fit inherit it.

This reference knows the distribution of the fit's own errors where the face is hidden. It
takes the residuals ``truth - fit`` (the fit similarity-aligned to the truth on the truly
visible vertices) of held-out renders with the same kind of occluder, fitted by the same path,
keeps them on the vertices hidden in the face at hand, and models them as a Gaussian: their
mean plus all their principal components. Its N samples are the fit plus the mean residual
plus the N-point quantiser of that Gaussian (k-means on draws), on those vertices only, so the
alignment on the visible vertices that CSD uses is the fit's own.

Two figures per face, in mm on the truly occluded vertices:

- the error of the bias-corrected fit (fit plus mean residual), a single guess;
- the CSD of the N samples.

This is a reference, not a bound: a method could condition on more than the fit and the kind
of occluder. It says what a sample set placed around this fit can gain when the distribution
of the fit's errors is known; :mod:`d3dface.bench.fit_errors` measures how that gain grows with
the number of held-out fits and with N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.cluster.vq import kmeans2

from d3dface.bench.alignment import align_on
from d3dface.metrics import mesh_distance

__all__ = ["FitErrorModel", "aligned_residual", "distance_mm", "fit_error_reference"]

_MM = 1000.0


def distance_mm(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """:func:`d3dface.metrics.mesh_distance` of (V, 3) meshes over ``where`` (V,) bool (None:
    every vertex), mm."""
    vertices = None if where is None else torch.from_numpy(where)
    return float(mesh_distance(torch.from_numpy(a), torch.from_numpy(b), vertices)) * _MM


def aligned_residual(fitted: np.ndarray, truth: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(V, 3) ``truth - fit``, the fit (V, 3) aligned to the truth on ``visible`` (V,) bool."""
    return truth - align_on(fitted, truth, visible)


@dataclass(frozen=True)
class FitErrorModel:
    """A Gaussian over the stage-1 fit's residuals (metres).

    Attributes:
        mean: (V, 3) the mean residual.
        components: (M, V, 3) orthonormal principal directions of the residuals.
        scales: (M,) the residuals' standard deviation along each direction.
    """

    mean: np.ndarray
    components: np.ndarray
    scales: np.ndarray

    @classmethod
    def from_residuals(
        cls, residuals: np.ndarray, n_components: int | None = None
    ) -> FitErrorModel:
        """The model of R residuals (R, V, 3), R >= 2, keeping at most ``n_components``
        (None: all that R residuals have, min(R - 1, 3V))."""
        if residuals.shape[0] < 2:
            raise ValueError("the fit-error model needs the residuals of two fits or more")
        count = residuals.shape[0]
        mean = residuals.mean(axis=0)
        centred = (residuals - mean).reshape(count, -1)
        _, singular, right = np.linalg.svd(centred, full_matrices=False)
        keep = min(count - 1, len(singular))
        if n_components is not None:
            keep = min(keep, n_components)
        return cls(
            mean=mean,
            components=right[:keep].reshape(keep, *mean.shape),
            scales=singular[:keep] / np.sqrt(count - 1),
        )

    def sample_offsets(self, n_samples: int, seed: int, draws: int = 4000) -> np.ndarray:
        """(N, V, 3) the mean plus the N-point quantiser of the residual distribution.

        The quantiser is k-means (seeded by ``seed``) on ``draws`` draws; one sample gives the
        mean alone.
        """
        if n_samples == 1:
            return self.mean[None].copy()
        rng = np.random.default_rng(seed)
        coordinates = rng.standard_normal((draws, len(self.scales))) * self.scales
        centres, _ = kmeans2(coordinates, n_samples, minit="++", seed=seed, iter=30)
        return self.mean + np.tensordot(centres, self.components, axes=1)


def fit_error_reference(
    residuals: np.ndarray,
    aligned_fit: np.ndarray,
    truth: np.ndarray,
    occluded: np.ndarray,
    n_samples: int,
    seed: int = 0,
) -> dict[str, float]:
    """The bias-corrected fit's error and the N quantiser samples' CSD, mm.

    Args:
        residuals: (R, V, 3) R >= 2 residuals (:func:`aligned_residual`) of other faces' fits,
            with the same kind of occluder as this face's.
        aligned_fit: (V, 3) this face's stage-1 fit, metres, similarity-aligned to the truth
            on the truly visible vertices (as :func:`aligned_residual` aligns it).
        truth: (V, 3) its true mesh.
        occluded: (V,) bool, its truly occluded vertices: the model's support and the distances'.
        n_samples: N.
        seed: seed of the quantiser.

    Returns:
        ``corrected_fit_mm`` and ``best_set_mm``.
    """
    model = FitErrorModel.from_residuals(residuals[:, occluded])
    fit, target = aligned_fit[occluded], truth[occluded]
    distances = [
        distance_mm(target, fit + offset) for offset in model.sample_offsets(n_samples, seed)
    ]
    return {
        "corrected_fit_mm": distance_mm(target, fit + model.mean),
        "best_set_mm": min(distances),
    }
