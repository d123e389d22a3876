"""Spatially varying mesh convolution (vcConv) and its residual blocks (Zhou et al. 2020).

A vcConv maps features on an input vertex set to an output vertex set. Output vertex ``i``
gathers the inputs ``x_{n(i,k)}`` of its neighbourhood (slot ``k``, nearest first) and
applies its own weight to each slot, drawn from the span of ``M`` shared bases:

    y_i = b_i + sum_k W_{i,k}^T x_{n(i,k)},      W_{i,k} = sum_m A[i, k, m] B_m,

with ``B_m`` (in_c, out_c) shared by all vertices (stored transposed: ``basis[:, m]``) and
``A`` (V_out, K, M) and ``b`` (V_out, out_c) per output vertex. Stride 2 pooling and
unpooling are the same operation with a different neighbourhood: a coarse output vertex
gathering the fine vertices around it (down), or a fine output vertex gathering the coarse
vertices around it (up); see :mod:`d3dface.vae.structure`. Inside the network features are
vertex-major, (V, C, B).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from d3dface.vae.structure import Neighbourhood


class Gather(nn.Module):
    """Collects each output vertex's neighbourhood from the input features."""

    def __init__(self, neighbourhood: Neighbourhood) -> None:
        super().__init__()
        self.register_buffer("index", neighbourhood.index.long(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """(V_in, C, B) -> (V_out, K, C, B); padded slots hold input vertex 0."""
        return torch.index_select(x, 0, self.index.flatten()).unflatten(0, self.index.shape)


def contract_per_vertex(gathered: Tensor, coefficients: Tensor, basis: Tensor) -> Tensor:
    """vcConv sum that first builds every vertex's slot weights ``W_{i,k}``.

    Args:
        gathered: (V, K, I, B) neighbour features.
        coefficients: (V, K, M) masked basis coefficients.
        basis: (O, M, I) shared weight bases (``basis[:, m]`` is ``B_m`` transposed).

    Returns:
        (V, O, B) without bias.
    """
    n_out, width, n_bases = coefficients.shape
    n_out_channels, _, n_in = basis.shape
    weights = coefficients.reshape(n_out * width, n_bases) @ basis.transpose(0, 1).flatten(1)
    weights = weights.view(n_out, width, n_out_channels, n_in).transpose(1, 2)
    return weights.flatten(2) @ gathered.flatten(1, 2)


def contract_per_basis(gathered: Tensor, coefficients: Tensor, basis: Tensor) -> Tensor:
    """vcConv sum that first mixes neighbours per basis, then applies the bases once.

    Same arguments and result as :func:`contract_per_vertex`.
    """
    mixed = coefficients.transpose(1, 2) @ gathered.flatten(2)  # (V, M, I * B)
    return basis.flatten(1) @ mixed.view(gathered.shape[0], -1, gathered.shape[-1])


def per_vertex_is_cheaper(batch: int, n_out: int, width: int, basis: Tensor) -> bool:
    """True when :func:`contract_per_vertex` needs fewer multiply-adds than per-basis."""
    n_out_channels, n_bases, n_in = basis.shape
    per_vertex = n_out * width * n_in * n_out_channels * (n_bases + batch)
    per_basis = batch * n_out * n_bases * n_in * (width + n_out_channels)
    return per_vertex < per_basis


class VCConv(nn.Module):
    """Spatially varying convolution: per-vertex coefficients over M shared bases.

    Features are vertex-major, (V, C, B): a neighbourhood gather then copies whole
    (C, B) blocks and both contractions are plain batched matrix products.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        neighbourhood: Neighbourhood,
        n_bases: int,
        generator: torch.Generator,
    ) -> None:
        """Weights are drawn from ``generator``, scaled so outputs keep the input variance."""
        super().__init__()
        mask = neighbourhood.mask.float()
        n_out, width = mask.shape
        counts = mask.sum(dim=1, keepdim=True)
        coefficients = torch.randn(n_out, width, n_bases, generator=generator)
        self.coefficients = nn.Parameter(coefficients * (mask / counts.sqrt())[..., None])
        basis = torch.randn(out_channels, n_bases, in_channels, generator=generator)
        self.basis = nn.Parameter(basis / math.sqrt(n_bases * in_channels))
        self.bias = nn.Parameter(torch.zeros(n_out, out_channels))
        self.register_buffer("slot_mask", mask[..., None], persistent=False)

    def masked_coefficients(self) -> Tensor:
        """(V_out, K, M) coefficients, zero on padded slots."""
        return self.coefficients * self.slot_mask

    def forward(self, gathered: Tensor) -> Tensor:
        """(V_out, K, in_c, B) gathered neighbours -> (V_out, out_c, B)."""
        return vc_contract(gathered, self.masked_coefficients(), self.basis) + self.bias[..., None]


def vc_contract(gathered: Tensor, coefficients: Tensor, basis: Tensor) -> Tensor:
    """``sum_k sum_m coefficients[v, k, m] * basis[:, m] @ gathered[v, k]``, cheapest order.

    Args:
        gathered: (V, K, I, B) neighbour features.
        coefficients: (V, K, M).
        basis: (O, M, I).

    Returns:
        (V, O, B).
    """
    n_out, width, _, batch = gathered.shape
    if per_vertex_is_cheaper(batch, n_out, width, basis):
        return contract_per_vertex(gathered, coefficients, basis)
    return contract_per_basis(gathered, coefficients, basis)


class DensityPool(nn.Module):
    """Learned per-vertex weighted average over a neighbourhood (vcDownRes / vcUpRes pooling).

    Weights are ``|rho_{i,k}| / sum_k |rho_{i,k}|`` over real neighbours, starting uniform.
    """

    def __init__(self, neighbourhood: Neighbourhood) -> None:
        super().__init__()
        mask = neighbourhood.mask.float()
        self.density = nn.Parameter(mask.clone())
        self.register_buffer("slot_mask", mask, persistent=False)

    def forward(self) -> Tensor:
        """(V_out, K) averaging weights, each row summing to 1 over real neighbours."""
        weights = self.density.abs() * self.slot_mask
        return weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-8)


class VCBlock(nn.Module):
    """Residual block: vcConv + residual path, then ELU (paper's vcDownConv + vcDownRes).

    With ``pooled`` (stride 2, down or up) the residual path is the density-weighted average
    of the same neighbourhood; otherwise (stride 1) it is the input itself. A linear channel
    map follows when the channel count changes. The pooled residual is linear in the
    gathered neighbours, so it is folded into the vcConv as one more basis (the channel map,
    or the identity) whose coefficients are the averaging weights: one contraction, one
    pass over the gathered features. Features are vertex-major, (V, C, B).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        neighbourhood: Neighbourhood,
        pooled: bool,
        n_bases: int,
        generator: torch.Generator,
        activate: bool = True,
    ) -> None:
        super().__init__()
        self.gather = Gather(neighbourhood)
        self.conv = VCConv(in_channels, out_channels, neighbourhood, n_bases, generator)
        self.pool = DensityPool(neighbourhood) if pooled else None
        self.channel_map = (
            nn.Parameter(
                torch.randn(out_channels, in_channels, generator=generator) / math.sqrt(in_channels)
            )
            if in_channels != out_channels
            else None
        )
        if self.channel_map is None:
            self.register_buffer("identity", torch.eye(in_channels), persistent=False)
        self.activate = activate

    def residual_map(self) -> Tensor:
        """(out_c, in_c) map of the residual path."""
        return self.identity if self.channel_map is None else self.channel_map

    def _contraction(self) -> tuple[Tensor, Tensor]:
        """The block's (V_out, K, M') coefficients and (out_c, M', in_c) bases: the vcConv's,
        plus the pooled residual as one more basis when the block pools."""
        if self.pool is None:
            return self.conv.masked_coefficients(), self.conv.basis
        coefficients = torch.cat([self.conv.masked_coefficients(), self.pool()[..., None]], dim=-1)
        basis = torch.cat([self.conv.basis, self.residual_map()[:, None]], dim=1)
        return coefficients, basis

    def frozen_weights(self) -> Tensor | None:
        """(V_out, out_c, K * in_c) per-vertex slot weights, built once and reused while no
        parameter of the block requires a gradient or changes (inference, latent search);
        None while training or when mixing per basis is cheaper (``K * out_c >= M' * (K +
        out_c)``)."""
        parameters = list(self.parameters())
        if any(p.requires_grad for p in parameters):
            return None
        key = tuple((p.data_ptr(), p._version) for p in parameters)
        if getattr(self, "_frozen_key", None) != key:
            coefficients, basis = self._contraction()
            n_out, width, n_bases = coefficients.shape
            out_channels = basis.shape[0]
            weights = None
            if width * out_channels < n_bases * (width + out_channels):
                weights = coefficients.reshape(n_out * width, n_bases) @ basis.transpose(
                    0, 1
                ).flatten(1)
                weights = weights.view(n_out, width, out_channels, -1).transpose(1, 2)
                weights = weights.flatten(2).contiguous()
            self._frozen_weights, self._frozen_key = weights, key
        return self._frozen_weights

    def forward(self, x: Tensor) -> Tensor:
        """(V_in, in_c, B) -> (V_out, out_c, B)."""
        gathered = self.gather(x)
        weights = self.frozen_weights()
        if weights is not None:
            out = weights @ gathered.flatten(1, 2) + self.conv.bias[..., None]
        else:
            out = vc_contract(gathered, *self._contraction()) + self.conv.bias[..., None]
        if self.pool is None:
            out = out + self.residual_map() @ x
        return F.elu(out) if self.activate else out


class BatchMajor(torch.autograd.Function):
    """(V, C, B) -> contiguous (B, V, C), with a contiguous gradient on the way back.

    A plain ``permute`` would hand the last vcConv a strided gradient, which sends
    ``torch.bmm``'s backward to a slow per-vertex loop on CPU.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        return x.permute(2, 0, 1).contiguous()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        return grad.permute(1, 2, 0).contiguous()


def vertex_major(x: Tensor) -> Tensor:
    """(B, V, C) -> contiguous (V, C, B), the layout inside the network."""
    return x.permute(1, 2, 0).contiguous()


def batch_major(x: Tensor) -> Tensor:
    """(V, C, B) -> contiguous (B, V, C), the layout outside the network."""
    return BatchMajor.apply(x)
