"""Whether samples leave the fit in the directions in which the fit is wrong.

On a vertex set ``S`` (the truly hidden vertices), with the fit ``F``, the truth ``T`` and
samples ``X_1 .. X_N`` in one frame, the fit's error is ``e = T_S - F_S`` and each sample's
offset from the fit ``d_i = X_i,S - F_S`` (both flattened). A sample can only come nearer the
truth than the fit does where its offset points along ``e``:

- ``best_cosine``: ``max_i <e, d_i> / (|e| |d_i|)`` (0 for a sample that equals the fit);
- ``csd_best_length_mm``: the closest sample distance if each offset kept its direction but
  had its best length, ``min_i min_{t >= 0} |e - t d_i| / sqrt(|S|)``, which is
  ``|e| sqrt(1 - max(0, best_cosine)^2) / sqrt(|S|)``.

A CSD a given fraction below the fit's error therefore needs ``best_cosine`` of at least
``sqrt(1 - (1 - fraction)^2)``: 0.71 for 30%, whatever the offsets' lengths.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["offset_direction_figures", "required_cosine"]

_MM = 1000.0


def offset_direction_figures(
    samples: Tensor, fit: Tensor, truth: Tensor, where: Tensor
) -> dict[str, float]:
    """``best_cosine`` and ``csd_best_length_mm`` (see the module docstring).

    Args:
        samples: (N, V, 3) metres. fit, truth: (V, 3) metres, in the samples' frame.
        where: (V,) bool vertex set (not empty).
    """
    count = int(where.sum())
    if count == 0:
        raise ValueError("the vertex set is empty; there is nothing to measure")
    error = (truth.double() - fit.double())[where].reshape(-1)
    offsets = (samples.double() - fit.double())[:, where].reshape(len(samples), -1)
    error_norm = float(error.norm())
    if error_norm == 0.0:  # the fit is exact: no sample can come nearer
        return {"best_cosine": 0.0, "csd_best_length_mm": 0.0}
    norms = offsets.norm(dim=1)
    cosines = torch.where(norms > 0, offsets @ error / (norms * error_norm), 0.0)
    best = float(cosines.max())
    left = error_norm * math.sqrt(1.0 - max(0.0, min(best, 1.0)) ** 2)
    return {"best_cosine": best, "csd_best_length_mm": left / math.sqrt(count) * _MM}


def required_cosine(fraction_below_fit: float) -> float:
    """The ``best_cosine`` a CSD ``fraction_below_fit`` (0-1) below the fit's error needs."""
    return math.sqrt(1.0 - (1.0 - fraction_below_fit) ** 2)
