"""The determinantal point process (DPP) diversity loss of Diverse3DFace (supplementary Sec. 1.3).

For N samples with latent codes ``z_i`` (d numbers each) and meshes ``X_i``:

- similarity ``S_ij = exp(-(k / m) * dist_ij)``, ``dist_ij`` the distance between samples i
  and j over the occluded vertices (:func:`d3dface.metrics.mesh_distance`) and ``m`` the median
  of the off-diagonal distances. ``m`` is held constant within a step (no gradient flows
  through it): it sets the length scale, and the gradient then always pushes samples apart.
  Were it differentiated, scaling every distance by the same factor would leave ``S``
  unchanged, so nothing would reward spreading the whole set.
- quality ``q_i = exp(-max(0, z_i.z_i - (d + n_sigma * sqrt(2 d))))``. Under the prior
  ``z ~ N(0, I_d)``, ``z.z`` is chi-square with mean ``d`` and standard deviation
  ``sqrt(2 d)``, so a code is free while its squared norm is within ``n_sigma`` standard
  deviations above the mean, and penalised beyond. (The paper prints ``z.z - n_sigma sqrt(d)``,
  which would penalise nearly every ordinary sample, ``z.z ~ d``; this is the reading that
  keeps typical codes free.) Larger ``n_sigma`` allows farther codes, hence more diversity.
- kernel ``L_ij = q_i S_ij q_j`` and loss ``L_dpp = -tr(I - (L + I)^-1)``, the negative
  expected size of a sample drawn from the DPP: lower when the samples are dissimilar and of
  high quality. It lies in ``[-N, 0)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["dpp_loss", "quality", "similarity"]

_MIN_MEDIAN = 1e-6
"""Metres; a floor for the median distance so that identical samples do not divide by 0."""


def similarity(distances: Tensor, k: float) -> Tensor:
    """``S = exp(-(k / median) * dist)`` of an (N, N) distance matrix, median over i != j.

    The median is detached (see the module docstring). Returns (N, N).
    """
    n = distances.shape[0]
    off_diagonal = distances[~torch.eye(n, dtype=torch.bool, device=distances.device)]
    median = off_diagonal.detach().median().clamp(min=_MIN_MEDIAN)
    return torch.exp(-(k / median) * distances)


def quality(codes: Tensor, n_sigma: float) -> Tensor:
    """``q = exp(-max(0, z.z - (d + n_sigma sqrt(2 d))))`` of (N, d) codes -> (N,)."""
    d = codes.shape[1]
    excess = codes.pow(2).sum(dim=1) - (d + n_sigma * math.sqrt(2.0 * d))
    return torch.exp(-excess.clamp(min=0.0))


def dpp_loss(distances: Tensor, codes: Tensor, k: float, n_sigma: float) -> Tensor:
    """``-tr(I - (L + I)^-1)`` with ``L_ij = q_i S_ij q_j``.

    Args:
        distances: (N, N) symmetric sample distances over the occluded vertices, zero diagonal.
        codes: (N, d) the samples' latent codes in units of the prior's standard deviation.
        k: similarity scale (larger: samples count as dissimilar sooner).
        n_sigma: quality threshold in standard deviations of ``z.z``.

    Returns:
        () the loss, in ``[-N, 0)``.
    """
    q = quality(codes, n_sigma)
    kernel = q[:, None] * similarity(distances, k) * q[None, :]
    eye = torch.eye(kernel.shape[0], dtype=kernel.dtype, device=kernel.device)
    return -torch.trace(eye - torch.linalg.inv(kernel + eye))
