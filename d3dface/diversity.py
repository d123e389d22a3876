"""Stage 2: diverse completions of a fitted, partly hidden face (Diverse3DFace, Alg. 2).

N codes of a latent space (:mod:`d3dface.latent_spaces`; the Mesh-VAE's by default) start as
samples around the fit and are optimised together to minimise

``w_known L_known + w_photo L_photometric + w_dpp L_dpp + w_smooth L_smooth``

- ``L_known``: mean absolute difference (metres) between each sample and the fitted mesh on
  the vertices that are *not* occluded (the visible ones and the self-hidden ones, whose
  shape the fit already settled); the samples must agree with the fit there.
- ``L_photometric``: each sample rendered with the fit's pose, albedo and SH light against the
  face crop, over the unoccluded face pixels (mean truncated absolute colour error, as in
  stage 1), at a reduced working resolution.
- ``L_dpp``: :func:`d3dface.dpp.dpp_loss` over the distances between samples on the occluded
  vertices: it spreads the samples apart where the face was hidden.
- ``L_smooth``: mean squared uniform Laplacian (mm) of each sample's offset from the fit, so
  the completions join the visible face without creases.

Paper weights: 1000 / 500 / 0.025 (+ smoothness), kept. Defaults that differ from the paper,
measured with ``python -m d3dface.bench diversity`` (synthetic faces with sunglasses, face
masks and random objects, true masks, N = 8; mean over faces):

- The photometric term is off by default (``photometric_size = 0``). On 6 faces at 100
  iterations, with it (96 px renders) the samples agreed less where the face is visible and the
  ratio ASD-O / ASD-V fell (first 3 faces: 5.5 / 10.2 / 6.1 with it, 13.4 / 53.2 / 21.0
  without), the closest sample was no nearer the truth (CSD 2.46 / 3.55 / 2.66 mm with it,
  2.41 / 3.08 / 3.90 without), and each iteration cost 1.5x. The fit already matched the
  photo; ``L_known`` hands that on, while the crude region albedo only adds noise.
- The DPP term is scaled by 8 / N (:data:`DPP_REFERENCE_SAMPLES`), so N = 8 keeps the paper's
  weight. Unscaled, the samples spread further the more were asked for and moved away from
  the truth. On the benchmark's first 6 faces (true masks, fit error 2.02 mm), ASD-V / ASD-O /
  CSD in mm at N = 8, 16, 32 were 0.13 / 2.68 / 2.05, 0.20 / 3.54 / 2.27, 0.31 / 4.70 / 2.92
  unscaled; scaled, N = 16 gives 0.12 / 2.20 / 1.83 and N = 32 0.11 / 1.89 / 1.74.
- 100 Adam steps instead of the paper's 300 SGD steps: on those 6 faces they already give
  ASD-V 0.15 mm, ASD-O 3.1 mm (ratio 20, the paper's is 6.0), and 300 would cost 3x the
  time, where one run of 100 for N = 8 takes 4.7 s on one CPU thread (photo to meshes in
  10.4 s; ``bench/results/speed.md``).

Every random step draws from a generator seeded by ``seed``: the same inputs and seed give the
same samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from numbers import Integral, Real
from typing import TypeVar

import cv2
import numpy as np
import torch
from torch import Tensor

from d3dface.dpp import dpp_loss
from d3dface.facemodel.model import FaceModel
from d3dface.fit_terms import photometric_loss
from d3dface.fitting import FitResult, facial_skin_faces
from d3dface.latent_spaces import LatentSpace
from d3dface.metrics import pairwise_distances
from d3dface.render import Camera, render, transform_points
from d3dface.vae.graph import UniformLaplacian
from d3dface.visibility import OCCLUDED, VISIBLE, scaled_camera

__all__ = [
    "DPP_REFERENCE_SAMPLES",
    "CompletionTarget",
    "DiversityResult",
    "DiversitySettings",
    "diversify",
    "interpolate",
]

_SQRT_FLOOR = 1e-12  # squared metres; keeps the distance's gradient finite at zero
DPP_REFERENCE_SAMPLES = 8
"""The DPP term is scaled by ``8 / N``. The known-vertex and smoothness terms are means over
the samples, so each sample's pull towards the fit shrinks as 1 / N, while the DPP loss is a
sum over samples whose push on each sample does not. Unscaled, the DPP outweighed them more
the more samples were asked for (see the module docstring); scaled, the balance is the one
measured at N = 8 for every N."""
_Tensors = TypeVar("_Tensors", "CompletionTarget", "PhotometricTarget")


@dataclass(frozen=True)
class DiversitySettings:
    """Knobs of :func:`diversify`.

    Attributes:
        n_samples: number of completions N (1 or more; the DPP needs 2).
        k: DPP similarity scale; larger makes samples count as dissimilar sooner.
        n_sigma: DPP quality threshold (standard deviations of ``z.z`` above its mean);
            larger allows codes farther from the prior's typical set: more diversity, less
            realism.
        iterations: optimiser steps.
        learning_rate: Adam's step size in prior units.
        known_weight, photometric_weight, dpp_weight, smoothness_weight: loss weights.
        photometric_size: side in pixels at which samples are rendered for the photometric
            term (the crop is resized to it; 96 is a sensible size); 0 (default) turns the
            term off.
        photometric_truncation: per-pixel cap of the colour error.
        seed: seed of the starting samples.
    """

    n_samples: int = 8
    k: float = 0.5
    n_sigma: float = 3.0
    iterations: int = 100
    learning_rate: float = 0.05
    known_weight: float = 1000.0
    photometric_weight: float = 500.0
    dpp_weight: float = 0.025
    smoothness_weight: float = 1.0
    photometric_size: int = 0
    photometric_truncation: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        # numpy numbers are taken and stored as Python's: torch's seeding and JSON need them
        for name in ("n_samples", "iterations", "seed", "photometric_size"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool):
                named = "the number of samples (n)" if name == "n_samples" else name
                raise ValueError(f"{named} must be a whole number, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("k", "n_sigma"):
            value = getattr(self, name)
            if not isinstance(value, Real) or isinstance(value, bool):
                raise ValueError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 1 <= self.n_samples <= 64:
            raise ValueError(f"the number of samples must be 1 to 64, got {self.n_samples}")
        if not 0.0 < self.k <= 100.0:
            raise ValueError(f"k must be in (0, 100], got {self.k}")
        if not 0.0 <= self.n_sigma <= 100.0:
            raise ValueError(f"n_sigma must be in [0, 100], got {self.n_sigma}")
        if not 0 <= self.iterations <= 10000:
            raise ValueError(f"iterations must be 0 to 10000, got {self.iterations}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"the seed must be an integer in [0, 2**63), got {self.seed}")
        if self.photometric_size < 0:
            raise ValueError(f"photometric_size must be 0 or more, got {self.photometric_size}")


@dataclass(frozen=True, eq=False)
class PhotometricTarget:
    """The fit's view of the face, for rendering samples.

    ``image`` (S, S, 3) float in [0, 1]; ``usable`` (S, S) bool (unoccluded, inside the
    photo); ``camera`` the crop camera at S pixels; ``rotation`` (3, 3) and ``translation``
    (3,) model -> camera; ``albedo`` (V, 3); ``sh_coeffs`` (9, 3); ``faces`` (F', 3) the
    facial skin triangles.
    """

    image: Tensor
    usable: Tensor
    camera: Camera
    rotation: Tensor
    translation: Tensor
    albedo: Tensor
    sh_coeffs: Tensor
    faces: Tensor


@dataclass(frozen=True, eq=False)
class CompletionTarget:
    """What the samples must agree with.

    Attributes:
        fitted: (V, 3) the stage-1 mesh, model space, metres.
        known: (V,) bool, vertices whose position the fit settles (not occluded).
        occluded: (V,) bool, vertices where the samples should differ.
        visible: (V,) bool, vertices the camera sees unoccluded (for ASD-V).
        photometric: the view for the photometric term, or None.
    """

    fitted: Tensor
    known: Tensor
    occluded: Tensor
    visible: Tensor
    photometric: PhotometricTarget | None = None

    def to(self, device: torch.device | str) -> CompletionTarget:
        """The same target with its tensors on ``device``."""
        photometric = self.photometric
        if photometric is not None:
            photometric = _tensors_to(photometric, device)
        return replace(_tensors_to(self, device), photometric=photometric)

    @classmethod
    def from_fit(cls, fit: FitResult, model: FaceModel, photometric_size: int) -> CompletionTarget:
        """The target of a stage-1 fit; ``photometric_size`` 0 leaves the photometric out."""
        classes = torch.from_numpy(fit.visibility)
        photometric = None
        if photometric_size > 0:
            crop = fit.crop
            size = (photometric_size, photometric_size)
            image = cv2.resize(crop.image, size, interpolation=cv2.INTER_AREA)
            usable = cv2.resize(
                (~crop.unusable).astype(np.float32), size, interpolation=cv2.INTER_AREA
            )
            photometric = PhotometricTarget(
                image=torch.from_numpy(image),
                usable=torch.from_numpy(usable >= 1.0),
                camera=scaled_camera(fit.crop_camera, photometric_size / crop.size),
                rotation=fit.rotation.float(),
                translation=fit.translation.float(),
                albedo=fit.albedo.float(),
                sh_coeffs=fit.sh_coeffs.float(),
                faces=facial_skin_faces(model).cpu(),
            )
        return cls(
            fitted=fit.vertices.float(),
            known=classes != OCCLUDED,
            occluded=classes == OCCLUDED,
            visible=classes == VISIBLE,
            photometric=photometric,
        )


@dataclass(frozen=True, eq=False)
class DiversityResult:
    """N completions.

    Attributes:
        codes: (N, D) the optimised codes. vertices: (N, V, 3) their meshes, metres.
        losses: final value of each weighted loss term. seconds: optimisation time.
    """

    codes: Tensor
    vertices: Tensor
    losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _tensors_to(item: _Tensors, device: torch.device | str) -> _Tensors:
    """A copy of a frozen dataclass with each of its tensor fields moved to ``device``."""
    moved = {
        name.name: value.to(device)
        for name in fields(item)
        if isinstance(value := getattr(item, name.name), Tensor)
    }
    return replace(item, **moved)


def _photometric_term(samples: Tensor, target: PhotometricTarget, truncation: float) -> Tensor:
    """Mean over samples (N, V, 3) of the truncated photometric error."""
    n = samples.shape[0]
    posed = transform_points(
        samples, target.rotation.expand(n, 3, 3), target.translation.expand(n, 3)
    )
    rendered, fragments = render(
        posed,
        target.faces,
        target.camera,
        albedo=target.albedo.expand(n, -1, -1),
        sh_coeffs=target.sh_coeffs.expand(n, -1, -1),
    )
    losses = [
        photometric_loss(rendered[i], target.image, fragments.mask[i] & target.usable, truncation)
        for i in range(n)
    ]
    return torch.stack(losses).mean()


def diversify(
    space: LatentSpace,
    target: CompletionTarget,
    faces: Tensor,
    settings: DiversitySettings | None = None,
) -> DiversityResult:
    """Optimise N codes of ``space`` into diverse completions agreeing with ``target``.

    Args:
        space: the latent space (codes -> meshes).
        target: the fit and its vertex classes.
        faces: (F, 3) the mesh's triangles (for the smoothness term).
        settings: see :class:`DiversitySettings`.

    Returns:
        The :class:`DiversityResult`. When no vertex is occluded, the DPP runs over the
        vertices not seen by the camera (self-hidden); when there are none either, it is
        left out.
    """
    settings = settings or DiversitySettings()
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(settings.seed)
    codes = space.initial_codes(settings.n_samples, generator).detach().requires_grad_(True)
    optimiser = torch.optim.Adam([codes], lr=settings.learning_rate)
    laplacian = UniformLaplacian(faces, target.fitted.shape[0])
    spread_over = target.occluded if bool(target.occluded.any()) else ~target.visible
    use_dpp = settings.n_samples > 1 and bool(spread_over.any())
    photometric = target.photometric if settings.photometric_size > 0 else None
    terms: dict[str, Tensor] = {}
    for step in range(settings.iterations + 1):
        samples = space.decode(codes)
        terms = _loss_terms(samples, codes, space, target, laplacian, spread_over, settings)
        if photometric is not None:
            terms["photometric"] = settings.photometric_weight * _photometric_term(
                samples, photometric, settings.photometric_truncation
            )
        if not use_dpp:
            terms.pop("dpp")
        if step == settings.iterations:
            break
        optimiser.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        optimiser.step()
        space.project_(codes)
    return DiversityResult(
        codes=codes.detach(),
        vertices=samples.detach(),
        losses={name: float(value.detach()) for name, value in terms.items()},
        seconds=time.perf_counter() - start,
    )


def _loss_terms(
    samples: Tensor,
    codes: Tensor,
    space: LatentSpace,
    target: CompletionTarget,
    laplacian: UniformLaplacian,
    spread_over: Tensor,
    settings: DiversitySettings,
) -> dict[str, Tensor]:
    """The known-vertex, DPP and smoothness terms (weighted) of samples (N, V, 3)."""
    offsets = samples - target.fitted
    known = offsets[:, target.known].abs().mean()
    smooth = laplacian(offsets * 1000.0).pow(2).sum(-1).mean()
    distances = pairwise_distances(samples, spread_over, _SQRT_FLOOR)
    dpp = dpp_loss(distances, space.prior_part(codes), settings.k, settings.n_sigma)
    return {
        "known": settings.known_weight * known,
        "dpp": settings.dpp_weight * (DPP_REFERENCE_SAMPLES / codes.shape[0]) * dpp,
        "smoothness": settings.smoothness_weight * smooth,
    }


def interpolate(space: LatentSpace, code_a: Tensor, code_b: Tensor, t: float) -> Tensor:
    """The mesh of ``z = (1 - t) * z_a + t * z_b`` (paper Sec. 1.6), (V, 3) metres.

    ``code_a``, ``code_b``: (D,) codes of the same space; ``t`` in [0, 1], b's share (0 gives
    a, 1 gives b), as the CLI's ``interpolate --t`` and the app's blend slider.
    """
    if not isinstance(t, Real) or isinstance(t, bool) or not 0.0 <= t <= 1.0:
        raise ValueError(f"the blend t must be a number in [0, 1], got {t!r}")
    with torch.no_grad():
        return space.decode(((1.0 - t) * code_a + t * code_b)[None])[0]
