"""Least-squares similarity alignment of point sets (Umeyama's closed form)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from torch import Tensor

__all__ = ["align_on", "apply_similarity", "similarity_transform"]

ArrayT = TypeVar("ArrayT", np.ndarray, Tensor)


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


def apply_similarity(points: ArrayT, transform: tuple[ArrayT, float | ArrayT, ArrayT]) -> ArrayT:
    """``points`` (..., 3) moved by a (rotation, scale, shift) of :func:`similarity_transform`;
    numpy arrays or torch tensors (then the transform's parts as tensors too)."""
    rotation, scale, shift = transform
    return scale * points @ rotation.T + shift


def align_on(source: np.ndarray, target: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """All of ``source`` (V, 3) moved by the similarity that best maps its ``where`` (V,) bool
    rows (all rows when None) onto those of ``target`` (V, 3)."""
    if where is None:
        return apply_similarity(source, similarity_transform(source, target))
    return apply_similarity(source, similarity_transform(source[where], target[where]))
