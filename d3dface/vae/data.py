"""Training meshes for the Mesh-VAE, sampled on the fly from a face model.

A mesh is the face model with identity ~ N(0, 1), a sparse expression (each shape active
with probability 0.15, then uniform in [0, 1]) and, where the model has local models, local
coefficients ~ N(0, 0.5^2). Its mask hides the vertices inside an XY rectangle of the
template's front view (vertices at any depth, as the paper masks in XY): the centre is uniform
over the face box (the XY box of the frontmost 30% of template vertices), the aspect ratio is
log-uniform in [1/2, 2], and the size is set so that the rectangle hides a fraction of all
vertices drawn uniform in [0, f], where f grows linearly from 0.1 in the first epoch to 0.4
after ``mask_ramp_epochs`` epochs (a schedule in absolute epochs, so extending a run
changes nothing that has been trained already).

Every draw comes from a generator given by :func:`seeded_generator`: the stream name
(``train``, ``validation``, ``statistics``, ``noise``) and an index (the step) are hashed
with the run seed, so validation meshes never share a seed with training meshes and a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from d3dface.facemodel.model import FaceModel
from d3dface.facemodel.sampling import sample_global_coefficients

STREAMS = {"train": 0, "validation": 1, "statistics": 2, "noise": 3, "benchmark": 4, "baseline": 5}
_STATISTICS_CHUNK = 256


@dataclass(frozen=True)
class DataConfig:
    """How meshes and masks are drawn.

    Attributes:
        expression_probability: chance that each expression shape is active.
        local_scale: standard deviation of the local coefficients.
        max_mask_fraction: largest fraction of vertices a mask hides (last epochs).
        first_mask_fraction: largest fraction in the first epoch.
        mask_ramp_epochs: epochs over which the largest fraction grows linearly.
        face_quantile: mask centres lie in the XY box of vertices with z above this quantile.
        max_aspect: rectangles have width / height in [1 / max_aspect, max_aspect].
    """

    expression_probability: float = 0.15
    local_scale: float = 0.5
    max_mask_fraction: float = 0.4
    first_mask_fraction: float = 0.1
    mask_ramp_epochs: int = 30
    face_quantile: float = 0.7
    max_aspect: float = 2.0


class MeshBatch(NamedTuple):
    """Meshes (B, V, 3) in metres and their masks (B, V) bool, True where hidden."""

    vertices: Tensor
    hidden: Tensor


def seeded_generator(seed: int, stream: str, index: int = 0) -> torch.Generator:
    """A CPU generator for draw ``index`` of a named stream of run ``seed``."""
    state = np.random.SeedSequence([seed, STREAMS[stream], index]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def mask_fraction_limit(epoch: int, config: DataConfig) -> float:
    """Largest hidden fraction in ``epoch`` (0-based): a linear ramp, then constant."""
    progress = min(1.0, epoch / max(1, config.mask_ramp_epochs))
    low, high = config.first_mask_fraction, config.max_mask_fraction
    return low + progress * (high - low)


class FaceMeshSampler:
    """Random meshes and rectangular masks of one face model."""

    def __init__(self, face_model: FaceModel, config: DataConfig | None = None) -> None:
        self.face_model = face_model
        self.config = config or DataConfig()
        xy = face_model.template[:, :2]
        depth = face_model.template[:, 2]
        front = depth >= torch.quantile(depth, self.config.face_quantile)
        self.box_low = xy[front].amin(dim=0)  # (2,)
        self.box_high = xy[front].amax(dim=0)  # (2,)

    @property
    def n_vertices(self) -> int:
        return self.face_model.n_vertices

    @torch.no_grad()
    def meshes(self, n: int, generator: torch.Generator) -> Tensor:
        """(n, V, 3) random faces in metres."""
        model = self.face_model
        identity, expression = sample_global_coefficients(
            n,
            model.n_identity,
            model.n_expression,
            generator,
            expression_probability=self.config.expression_probability,
        )
        local = None
        if model.n_regions and model.n_local:
            local = self.config.local_scale * torch.randn(
                n, model.n_regions, model.n_local, generator=generator
            )
        return model(identity, expression, local)

    def masks(self, n: int, max_fraction: float, generator: torch.Generator) -> Tensor:
        """(n, V) bool: each hides an XY rectangle covering U(0, max_fraction) of vertices."""
        span = self.box_high - self.box_low
        centre = self.box_low + span * torch.rand(n, 2, generator=generator)
        log_aspect = (2 * torch.rand(n, generator=generator) - 1) * math.log(self.config.max_aspect)
        half_aspect = torch.exp(0.5 * log_aspect)
        fraction = max_fraction * torch.rand(n, generator=generator)
        offset = (self.face_model.template[None, :, :2] - centre[:, None]).abs()  # (n, V, 2)
        # rectangle of half-size (s * sqrt(a), s / sqrt(a)) holds the vertices with size <= s
        size = torch.maximum(
            offset[..., 0] / half_aspect[:, None], offset[..., 1] * half_aspect[:, None]
        )
        count = (fraction * self.n_vertices).floor().long()  # (n,)
        threshold = size.sort(dim=1).values.gather(1, (count - 1).clamp(min=0)[:, None])
        return (size <= threshold) & (count[:, None] > 0)

    def sample(self, n: int, max_fraction: float, generator: torch.Generator) -> MeshBatch:
        """n meshes and masks from one generator."""
        vertices = self.meshes(n, generator)
        return MeshBatch(vertices, self.masks(n, max_fraction, generator))


def validation_set(sampler: FaceMeshSampler, n: int, seed: int) -> MeshBatch:
    """Fixed validation meshes (stream ``validation``), masks at the largest fraction."""
    return sampler.sample(n, sampler.config.max_mask_fraction, seeded_generator(seed, "validation"))


def offset_statistics(sampler: FaceMeshSampler, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Per-vertex, per-axis mean and standard deviation of offsets from the template.

    The deviation is floored at 5% of its mean, so vertices that hardly move are not blown
    up by the normalisation.

    Returns:
        mean, std: (V, 3) each, metres.
    """
    generator = seeded_generator(seed, "statistics")
    total = torch.zeros(sampler.n_vertices, 3, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, n, _STATISTICS_CHUNK):
        offsets = sampler.meshes(min(_STATISTICS_CHUNK, n - start), generator).double()
        offsets = offsets - sampler.face_model.template.double()
        total += offsets.sum(dim=0)
        total_sq += offsets.square().sum(dim=0)
    mean = total / n
    std = (total_sq / n - mean.square()).clamp(min=0).sqrt()
    std = std.clamp(min=0.05 * float(std.mean()))
    return mean.float(), std.float()
