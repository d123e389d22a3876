"""Random coefficients of the global model, for building local models and training data."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_global_coefficients(
    n: int,
    n_identity: int,
    n_expression: int,
    generator: torch.Generator,
    expression_probability: float = 0.15,
    identity_scale: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Random faces of a global model.

    Identity coefficients are N(0, identity_scale^2); each expression shape is active with
    ``expression_probability`` and then has a weight uniform in [0, 1] (sparse, like real
    expressions, which combine a few shapes).

    Returns:
        identity (n, n_identity), expression (n, n_expression), float32.
    """
    identity = torch.randn(n, n_identity, generator=generator) * identity_scale
    active = torch.rand(n, n_expression, generator=generator) < expression_probability
    expression = torch.rand(n, n_expression, generator=generator) * active
    return identity, expression
