"""Pooling structure of the Mesh-VAE, computed once from the template mesh.

Levels: level 0 is every template vertex; level ``l + 1`` is a subset of level ``l`` picked
by seeded Monte-Carlo (dart-throwing) sampling: visit the level's vertices in a random order
and keep a vertex unless a kept one lies within the sampling radius ``rho``. ``rho`` is
bisected until the sampler keeps at least the designed count, and the first kept vertices
(in visiting order) up to that count form the level. The designed counts follow the paper's
FLAME levels (Tables 3-4: 5023 -> 1367 -> 270 -> 45 -> 10), scaled to the template's vertex
count.

Neighbourhoods: each convolution gathers, for every output vertex, the input vertices within
a radius of it, nearest first, padded to a fixed count with a mask:

- ``down{l}``: level ``l`` -> ``l + 1`` (stride 2), radius ``down_radius * rho_{l+1}``;
- ``same{l}``: level ``l`` -> ``l`` (stride 1), radius ``same_radius * rho_l``;
- ``up{l}``: level ``l + 1`` -> ``l`` (unpooling), radius ``up_radius * rho_{l+1}``.

All distances are geodesic on the template in local-hop units (see :mod:`d3dface.vae.graph`),
so one unit is about one mesh edge; the paper's radii are likewise in hops of FLAME's mesh.
Every output vertex keeps at least its nearest input vertex and at most ``max_neighbours``.
The same template, config and seed always give the same structure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from d3dface.vae.graph import geodesic_distances, local_hop_graph

#: Fractions of the template's vertices kept at levels 1.. (the paper's FLAME level sizes).
PAPER_LEVEL_FRACTIONS = (1367 / 5023, 270 / 5023, 45 / 5023, 10 / 5023)
_BISECTION_STEPS = 40
_LOCAL_LIMIT_SPACINGS = 4.0


@dataclass(frozen=True)
class StructureConfig:
    """How the structure is built; radii are multiples of a level's sampling radius ``rho``."""

    level_fractions: tuple[float, ...] = PAPER_LEVEL_FRACTIONS
    down_radius: float = 2.0
    same_radius: float = 2.0
    up_radius: float = 2.0
    max_neighbours: int = 48
    seed: int = 0


@dataclass(frozen=True)
class Neighbourhood:
    """Input vertices gathered by each output vertex of one convolution.

    Attributes:
        index: (V_out, K) int64 positions in the input level's vertex list, nearest first;
            padded slots hold 0.
        mask: (V_out, K) bool, True for real neighbours.
    """

    index: Tensor
    mask: Tensor

    @property
    def counts(self) -> Tensor:
        """(V_out,) number of real neighbours per output vertex."""
        return self.mask.sum(dim=1)


@dataclass(frozen=True)
class MeshStructure:
    """Levels, sampling radii and convolution neighbourhoods of a template mesh.

    Attributes:
        levels: level ``l`` as (n_l,) sorted template vertex ids; level 0 is ``arange(V)``
            and each level is a subset of the one before.
        radii: (L + 1,) float32 sampling radius of each level in local hops (level 0: 0).
        neighbourhoods: ``down{l}`` / ``up{l}`` for l < L, ``same{l}`` for 0 < l < L.
        config: how it was built.
    """

    levels: list[Tensor]
    radii: Tensor
    neighbourhoods: dict[str, Neighbourhood]
    config: StructureConfig

    @property
    def level_sizes(self) -> list[int]:
        """Vertex count of every level, finest first."""
        return [int(level.numel()) for level in self.levels]

    @property
    def n_levels(self) -> int:
        """Number of pooled levels L (excluding level 0)."""
        return len(self.levels) - 1

    def check(self) -> None:
        """Raise ValueError when the levels, radii and neighbourhoods do not fit together
        (e.g. a tensor of a saved structure lost a row): each neighbourhood has one index
        row and one mask row per output vertex and indexes only vertices of its input level.
        Cheap: a few shape comparisons and one max per neighbourhood."""
        sizes = self.level_sizes
        if self.radii.shape != (len(sizes),):
            raise ValueError(f"radii hold {tuple(self.radii.shape)} values for {len(sizes)} levels")
        for level, vertices in enumerate(self.levels[1:], start=1):
            if vertices.numel() and int(vertices.max()) >= sizes[0]:
                raise ValueError(f"level {level} names vertices the template does not have")
        for name, hood in self.neighbourhoods.items():
            found = re.fullmatch(r"(down|same|up)(\d+)", name)
            if found is None or int(found[2]) >= len(sizes) - (found[1] != "same"):
                raise ValueError(f"neighbourhood '{name}' does not belong to {len(sizes)} levels")
            level = int(found[2])
            outputs, inputs = {
                "down": (level + 1, level),
                "same": (level, level),
                "up": (level, level + 1),
            }[found[1]]
            if hood.index.shape != hood.mask.shape or hood.index.ndim != 2:
                raise ValueError(
                    f"neighbourhood '{name}': index {tuple(hood.index.shape)} and mask "
                    f"{tuple(hood.mask.shape)} must be the same (outputs, slots) shape"
                )
            if hood.index.shape[0] != sizes[outputs]:
                raise ValueError(
                    f"neighbourhood '{name}' has {hood.index.shape[0]} rows for the "
                    f"{sizes[outputs]} vertices of level {outputs}"
                )
            if hood.index.numel() and (hood.index.min() < 0 or hood.index.max() >= sizes[inputs]):
                raise ValueError(
                    f"neighbourhood '{name}' indexes beyond the {sizes[inputs]} vertices of "
                    f"level {inputs}"
                )

    def to_tensors(self, prefix: str = "structure.") -> dict[str, Tensor]:
        """Flat name -> tensor dict for a safetensors file."""
        tensors = {f"{prefix}level{i}": level for i, level in enumerate(self.levels)}
        tensors[f"{prefix}radii"] = self.radii
        for name, hood in self.neighbourhoods.items():
            tensors[f"{prefix}{name}.index"] = hood.index
            tensors[f"{prefix}{name}.mask"] = hood.mask
        return tensors

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, Tensor], config: StructureConfig, prefix: str = "structure."
    ) -> MeshStructure:
        """Inverse of :meth:`to_tensors`; KeyError names a missing tensor."""
        n_levels = len(config.level_fractions)
        levels = [tensors[f"{prefix}level{i}"].long() for i in range(n_levels + 1)]
        neighbourhoods = {
            name: Neighbourhood(
                tensors[f"{prefix}{name}.index"].long(), tensors[f"{prefix}{name}.mask"].bool()
            )
            for name in neighbourhood_names(n_levels)
        }
        return cls(levels, tensors[f"{prefix}radii"].float(), neighbourhoods, config)


def neighbourhood_names(n_levels: int) -> list[str]:
    """Names of the neighbourhoods of an L-level structure."""
    names = [f"down{level}" for level in range(n_levels)]
    names += [f"same{level}" for level in range(1, n_levels)]
    names += [f"up{level}" for level in range(n_levels)]
    return names


def designed_level_sizes(n_vertices: int, level_fractions: tuple[float, ...]) -> list[int]:
    """Vertex count of every level: ``[V, round(V * f_1), ...]``, at least 1 each."""
    return [n_vertices] + [max(1, round(n_vertices * f)) for f in level_fractions]


def build_structure(
    template: Tensor, faces: Tensor, config: StructureConfig | None = None
) -> MeshStructure:
    """Sample the levels and neighbourhoods of a template mesh.

    Args:
        template: (V, 3) vertex positions.
        faces: (F, 3) triangles.
        config: sizes, radii and seed; the default follows the paper.

    Returns:
        The structure; identical for identical inputs.
    """
    config = config or StructureConfig()
    n_vertices = template.shape[0]
    graph = local_hop_graph(template.detach().cpu().double().numpy(), faces.cpu().numpy())
    sizes = designed_level_sizes(n_vertices, config.level_fractions)
    rng = np.random.default_rng(config.seed)
    # Level 1 only needs distances up to a few sample spacings (in hops, ~sqrt(V / n_1)).
    limit = _LOCAL_LIMIT_SPACINGS * math.sqrt(n_vertices / sizes[1])
    local = geodesic_distances(graph, np.arange(n_vertices), limit)
    picked, radius = dart_throwing(local, sizes[1], rng, limit)
    del local
    levels = [np.arange(n_vertices), picked]
    radii = [0.0, radius]
    # Every later distance has an end in level 1: search from its vertices once.
    from_level1 = geodesic_distances(graph, picked)
    row = np.full(n_vertices, -1)
    row[picked] = np.arange(len(picked))

    def between(outputs: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """(len(outputs), len(inputs)) distances; one side must lie in level 1."""
        if (row[outputs] >= 0).all():
            return from_level1[np.ix_(row[outputs], inputs)]
        return from_level1[np.ix_(row[inputs], outputs)].T

    for size in sizes[2:]:
        previous = levels[-1]
        kept, radius = dart_throwing(between(previous, previous), size, rng)
        levels.append(previous[kept])
        radii.append(radius)
    neighbourhoods = {}
    for level in range(len(levels) - 1):
        fine, coarse = levels[level], levels[level + 1]
        neighbourhoods[f"down{level}"] = gather_neighbourhood(
            between(coarse, fine), config.down_radius * radii[level + 1], config
        )
        neighbourhoods[f"up{level}"] = gather_neighbourhood(
            between(fine, coarse), config.up_radius * radii[level + 1], config
        )
        if level > 0:
            neighbourhoods[f"same{level}"] = gather_neighbourhood(
                between(fine, fine), config.same_radius * radii[level], config
            )
    return MeshStructure(
        levels=[torch.from_numpy(level.astype(np.int64)) for level in levels],
        radii=torch.tensor(radii, dtype=torch.float32),
        neighbourhoods=dict(sorted(neighbourhoods.items())),
        config=config,
    )


def dart_throwing(
    distances: np.ndarray,
    target: int,
    rng: np.random.Generator,
    max_radius: float | None = None,
) -> tuple[np.ndarray, float]:
    """Monte-Carlo subset of exactly ``target`` of n points, spread evenly.

    Args:
        distances: (n, n) pairwise distances, exact up to ``max_radius``.
        target: how many to keep, 1 <= target <= n.
        rng: source of the visiting order.
        max_radius: largest sampling radius tried (default: the largest distance).

    Returns:
        (target,) sorted positions of the kept points, and the sampling radius used.
    """
    order = rng.permutation(distances.shape[0])
    low = 0.0
    high = float(distances.max()) if max_radius is None else max_radius
    kept = _throw(distances, order, low)
    for _ in range(_BISECTION_STEPS):
        if len(kept) == target:
            break
        middle = 0.5 * (low + high)
        candidate = _throw(distances, order, middle)
        if len(candidate) >= target:
            low, kept = middle, candidate
        else:
            high = middle
    return np.sort(np.asarray(kept[:target], dtype=np.int64)), low


def _throw(distances: np.ndarray, order: np.ndarray, radius: float) -> list[int]:
    """Points kept, in visiting order, when no two kept ones may lie within ``radius``."""
    covered = np.zeros(distances.shape[0], dtype=bool)
    kept = []
    for point in order:
        if not covered[point]:
            kept.append(int(point))
            covered |= distances[point] <= radius
    return kept


def gather_neighbourhood(
    distances: np.ndarray, radius: float, config: StructureConfig
) -> Neighbourhood:
    """Inputs within ``radius`` of each output, nearest first, at least 1, at most the cap.

    Args:
        distances: (V_out, V_in) output-to-input distances.
        radius: neighbourhood radius.
        config: supplies ``max_neighbours``.
    """
    k = min(config.max_neighbours, distances.shape[1])
    nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
    nearest_distance = np.take_along_axis(distances, nearest, axis=1)
    order = np.lexsort((nearest, nearest_distance), axis=1)
    nearest = np.take_along_axis(nearest, order, axis=1)
    mask = np.take_along_axis(nearest_distance, order, axis=1) <= radius
    mask[:, 0] = True
    width = int(mask.sum(axis=1).max())
    index = np.where(mask, nearest, 0)[:, :width]
    return Neighbourhood(
        torch.from_numpy(index.astype(np.int64)), torch.from_numpy(mask[:, :width])
    )
