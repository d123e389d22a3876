"""Diversity metrics of a set of completions (Diverse3DFace, Sec. 4; supplementary Table 1).

Meshes are in metres, figures in millimetres. The distance between two meshes over a vertex
set ``S`` is ``||A_S - B_S||_F / sqrt(|S|)`` (the root of the summed squared vertex offsets per
vertex, as in the paper's code). With samples ``X_1 .. X_N``:

- ASD-V: mean over samples of the distance to the *nearest other* sample, on visible vertices
  (lower: the samples agree with each other where the face was seen);
- ASD-O: the same on occluded vertices (higher: the samples differ where it was hidden);
- their ratio ASD-O / ASD-V (higher is better; the paper's overall figure is 6.0);
- CSD: distance from the ground truth to the closest sample (lower: one of the samples is
  close to the truth), on a given vertex set.
"""

from __future__ import annotations

from torch import Tensor

__all__ = [
    "average_self_distance",
    "closest_sample_distance",
    "diversity_metrics",
    "mesh_distance",
    "pairwise_distances",
]

_MM = 1000.0


def mesh_distance(a: Tensor, b: Tensor, where: Tensor | None = None, floor: float = 0.0) -> Tensor:
    """Distance ``||A_S - B_S||_F / sqrt(|S|)`` between meshes, in the input's units.

    Args:
        a, b: (..., V, 3) vertices (broadcast against each other).
        where: (V,) bool vertex set S, or None for every vertex.
        floor: added under the square root (squared units) so that the gradient stays
            finite where two meshes coincide; 0 for measurements.

    Returns:
        (...) distances.
    """
    if where is not None:
        a, b = a[..., where, :], b[..., where, :]
    n = a.shape[-2]
    if n == 0:
        raise ValueError("the vertex set is empty; there is nothing to measure")
    return ((a - b).pow(2).sum(dim=(-1, -2)) / n + floor).sqrt()


def pairwise_distances(samples: Tensor, where: Tensor | None = None, floor: float = 0.0) -> Tensor:
    """(N, N) distances between every two samples of ``samples`` (N, V, 3) over ``where``
    (``floor``: see :func:`mesh_distance`)."""
    return mesh_distance(samples[:, None], samples[None], where, floor)


def average_self_distance(samples: Tensor, where: Tensor | None = None) -> float:
    """Mean over samples of the distance to the nearest other sample, mm (ASD).

    ``samples`` (N, V, 3) metres, N >= 2; ``where`` (V,) bool.
    """
    if samples.shape[0] < 2:
        raise ValueError("ASD needs at least two samples")
    distances = pairwise_distances(samples.double(), where)
    distances.fill_diagonal_(float("inf"))
    return float(distances.min(dim=1).values.mean() * _MM)


def closest_sample_distance(samples: Tensor, truth: Tensor, where: Tensor | None = None) -> float:
    """Distance from ``truth`` (V, 3) to the closest of ``samples`` (N, V, 3), mm (CSD)."""
    return float(mesh_distance(samples.double(), truth.double()[None], where).min() * _MM)


def diversity_metrics(samples: Tensor, visible: Tensor, occluded: Tensor) -> dict[str, float]:
    """ASD-V, ASD-O (mm) and their ratio for ``samples`` (N, V, 3) metres, N >= 2.

    ``visible`` and ``occluded`` are (V,) bool vertex sets. The ratio is ``inf`` when ASD-V is 0.
    """
    asd_v = average_self_distance(samples, visible)
    asd_o = average_self_distance(samples, occluded)
    ratio = asd_o / asd_v if asd_v > 0 else float("inf")
    return {"asd_v_mm": asd_v, "asd_o_mm": asd_o, "asd_ratio": ratio}
