"""The spaces stage 2 searches: codes that decode to meshes.

- :class:`VAESpace`: the Mesh-VAE's latent space (Diverse3DFace). Codes start as posterior
  samples of the encoder given the fitted mesh with its occluded vertices hidden. By default
  a code decodes to the fit plus the change the code makes to the decoder's output relative
  to the posterior mean ("anchored"), so the Mesh-VAE's own reconstruction error does not
  enter the samples; ``anchored=False`` decodes codes directly, as the paper does.
- :class:`ModelSpace`: the face model's own coefficients (the paper's baselines "FLAME+DPP",
  here Global+DPP, and Global+Local+DPP). Codes start at the fitted coefficients plus prior
  noise on the identity (and local) part.

Every space gives flat (N, D) leaf codes, decodes them to (N, V, 3) meshes in metres, and
names the part of a code that is standard normal under the prior (for the DPP's quality term).
A space works on its model's device; starting codes are drawn on the CPU from the given
generator and then moved, so a seed gives the same codes on every device.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from d3dface.facemodel.model import FaceModel
from d3dface.vae.model import MeshVAE

__all__ = ["LatentSpace", "ModelSpace", "VAESpace"]


class LatentSpace(Protocol):
    """What the diversity optimiser needs of a space."""

    def initial_codes(self, n: int, generator: torch.Generator) -> Tensor:
        """(n, D) starting codes (a fresh tensor)."""
        ...

    def decode(self, codes: Tensor) -> Tensor:
        """(N, D) codes -> (N, V, 3) meshes in metres."""
        ...

    def prior_part(self, codes: Tensor) -> Tensor:
        """(N, D) codes -> (N, d) their standard-normal part."""
        ...

    def project_(self, codes: Tensor) -> None:
        """Put (N, D) codes back into their valid set in place (after an optimiser step)."""
        ...


class VAESpace:
    """The Mesh-VAE's latent space around one fitted mesh.

    A code ``z`` decodes to ``D(z)`` (``anchored=False``, the paper) or, by default, to
    ``fitted + D(z) - D(mu)`` with ``mu`` the encoder's posterior mean: the posterior mean
    gives back the fit exactly and every other code the fit plus the decoder's change. On
    the diversity benchmark (``python -m d3dface.bench diversity``: 12 faces, true masks,
    N = 8) anchoring brought the closest sample nearer the truth on the hidden part (CSD
    2.39 -> 2.20 mm) and the samples closer together where the face is seen (ASD-V 0.14 ->
    0.12 mm): direct decoding adds the Mesh-VAE's own reconstruction error (0.69 mm for
    lite) to every sample.

    Args:
        vae: the Mesh-VAE.
        fitted: (V, 3) the fitted mesh, metres.
        hidden: (V,) bool, the vertices the encoder must not see (the occluded ones).
        anchored: decode relative to the fit (default) or directly.
    """

    def __init__(self, vae: MeshVAE, fitted: Tensor, hidden: Tensor, anchored: bool = True) -> None:
        self.vae = vae
        with torch.no_grad():
            mu, logvar = vae.encode(fitted[None], hidden[None])
            self.offset = fitted - vae.decode(mu)[0] if anchored else None
        self.mu = mu[0].reshape(-1)
        self.sigma = torch.exp(0.5 * logvar[0]).reshape(-1)
        self.latent_shape = tuple(mu.shape[1:])

    def initial_codes(self, n: int, generator: torch.Generator) -> Tensor:
        """``mu + sigma * eps``: n posterior samples, (n, D); the first is the mean itself."""
        noise = torch.randn(n, self.mu.numel(), generator=generator, device=generator.device)
        noise = noise.to(self.mu.device)
        noise[0] = 0.0
        return self.mu + self.sigma * noise

    def decode(self, codes: Tensor) -> Tensor:
        """(N, D) -> (N, V, 3)."""
        meshes = self.vae.decode(codes.reshape(codes.shape[0], *self.latent_shape))
        return meshes if self.offset is None else meshes + self.offset

    def prior_part(self, codes: Tensor) -> Tensor:
        """The whole code is N(0, I) under the VAE's prior."""
        return codes

    def project_(self, codes: Tensor) -> None:
        """Every code is valid."""


class ModelSpace:
    """The face model's coefficients around a fit: identity, expression, optionally local.

    A code is ``[identity (K_id), expression (K_exp), local (R * L)]`` (local only with
    ``use_local``). Identity and local coefficients are N(0, 1) under the model's prior;
    expression weights are kept in [0, 1].

    Args:
        model: the face model.
        identity: (K_id,), expression: (K_exp,), local: (R, L) the fitted coefficients.
        use_local: search the local coefficients too (Global+Local+DPP) or not (Global+DPP).
        noise: standard deviation of the starting noise on the prior part (prior units).
    """

    def __init__(
        self,
        model: FaceModel,
        identity: Tensor,
        expression: Tensor,
        local: Tensor,
        use_local: bool,
        noise: float = 0.5,
    ) -> None:
        self.model = model
        self.use_local = use_local
        self.noise = noise
        device = model.template.device
        parts = [identity, expression] + ([local.reshape(-1)] if use_local else [])
        self.start = torch.cat(parts).float().to(device)
        # the fitted local shape stays as it is when the local coefficients are not searched
        fixed = use_local or not bool(local.any())
        self.fixed_local = None if fixed else local[None].float().to(device)
        self.n_identity, self.n_expression = identity.numel(), expression.numel()

    def _split(self, codes: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        identity = codes[:, : self.n_identity]
        end = self.n_identity + self.n_expression
        expression = codes[:, self.n_identity : end]
        if self.use_local:
            local = codes[:, end:].reshape(codes.shape[0], self.model.n_regions, -1)
        elif self.fixed_local is not None:
            local = self.fixed_local.expand(codes.shape[0], -1, -1)
        else:
            local = None
        return identity, expression, local

    def initial_codes(self, n: int, generator: torch.Generator) -> Tensor:
        """The fit plus noise on the prior part, (n, D); the first is the fit itself."""
        codes = self.start.expand(n, -1).clone()
        noise = torch.randn(n, codes.shape[1], generator=generator, device=generator.device)
        noise = self.noise * noise.to(codes.device)
        noise[0] = 0.0
        noise[:, self.n_identity : self.n_identity + self.n_expression] = 0.0
        return codes + noise

    def decode(self, codes: Tensor) -> Tensor:
        """(N, D) -> (N, V, 3)."""
        identity, expression, local = self._split(codes)
        return self.model(identity, expression, local)

    def prior_part(self, codes: Tensor) -> Tensor:
        """Identity (and local) coefficients, (N, d)."""
        identity, _, local = self._split(codes)
        if self.use_local and local is not None:
            return torch.cat([identity, local.reshape(codes.shape[0], -1)], dim=1)
        return identity

    def project_(self, codes: Tensor) -> None:
        """Clamp the expression weights to [0, 1]."""
        with torch.no_grad():
            codes[:, self.n_identity : self.n_identity + self.n_expression].clamp_(0.0, 1.0)
