"""Least-squares similarity alignment of point sets (Umeyama's closed form)."""

from __future__ import annotations

import numpy as np

__all__ = ["similarity_transform"]


def similarity_transform(
    source: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray]:
    """The rotation (3, 3), scale and shift (3,) that best map ``source`` (N, 3) onto
    ``target`` (N, 3): ``scale * source @ rotation.T + shift``."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(b.T @ a)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / (a**2).sum())
    return rotation, scale, target_mean - scale * source_mean @ rotation.T
