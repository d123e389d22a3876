"""The fit-error reference: its Gaussian, its quantiser and its alignment, on made-up residuals."""

from __future__ import annotations

import numpy as np
import pytest

from d3dface.bench.fit_error_model import (
    FitErrorModel,
    aligned_residual,
    distance_mm,
    fit_error_reference,
)

_V = 60


def _rotation(angle: float) -> np.ndarray:
    """(3, 3) a turn of ``angle`` radians about the y axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _residuals(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, V, 3) residuals: a fixed bias plus two random directions with scales 3 and 1 mm,
    with the bias and the (2, V, 3) unit directions."""
    rng = np.random.default_rng(seed)
    bias = rng.normal(0.0, 0.001, (_V, 3))
    directions = np.linalg.qr(rng.standard_normal((_V * 3, 2)))[0].T.reshape(2, _V, 3)
    weights = rng.standard_normal((count, 2)) * np.array([0.003, 0.001])
    return bias + np.tensordot(weights, directions, axes=1), bias, directions


def test_the_model_finds_the_bias_and_the_leading_direction() -> None:
    residuals, bias, directions = _residuals(400, 0)
    model = FitErrorModel.from_residuals(residuals, n_components=5)
    assert model.components.shape == (5, _V, 3)
    assert np.abs(model.mean - bias).max() < 0.0005
    assert abs(abs(np.sum(model.components[0] * directions[0])) - 1.0) < 0.01
    assert np.isclose(model.scales[0], 0.003, rtol=0.1)
    assert model.scales[2] < 1e-9  # two directions are all there is
    with pytest.raises(ValueError, match="two fits"):
        FitErrorModel.from_residuals(residuals[:1], 5)


def test_one_sample_is_the_mean_and_more_samples_spread_along_the_errors() -> None:
    model = FitErrorModel.from_residuals(_residuals(200, 1)[0], n_components=2)
    assert np.array_equal(model.sample_offsets(1, seed=0)[0], model.mean)
    offsets = model.sample_offsets(8, seed=0)
    assert offsets.shape == (8, _V, 3)
    assert np.array_equal(offsets, model.sample_offsets(8, seed=0))  # seeded
    along = np.tensordot(offsets - model.mean, model.components[0], axes=([1, 2], [0, 1]))
    across = np.tensordot(offsets - model.mean, model.components[1], axes=([1, 2], [0, 1]))
    assert along.std() > 2.0 * across.std()  # the quantiser follows the larger spread


def test_the_residual_ignores_a_similarity_transform() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(0.0, 0.05, (_V, 3))
    error = np.zeros((_V, 3))
    error[-10:, 2] = 0.002  # the fit is 2 mm off on the last (hidden) vertices only
    visible = np.arange(_V) < _V - 10
    fitted = (0.9 * (truth - error) @ _rotation(0.3).T) + np.array([0.1, -0.2, 0.05])
    residual = aligned_residual(fitted, truth, visible)
    assert np.abs(residual - error).max() < 1e-9


def test_all_components_are_kept_by_default() -> None:
    residuals, _, _ = _residuals(5, 5)
    assert FitErrorModel.from_residuals(residuals).components.shape == (4, _V, 3)


def test_samples_around_the_fit_beat_the_fit_when_its_errors_are_known() -> None:
    residuals, _, _ = _residuals(300, 3)
    truth = np.random.default_rng(4).normal(0.0, 0.05, (_V, 3))
    fitted = truth - residuals[-1]  # the held-out face: its fit carries one more such error
    hidden = np.arange(_V) >= _V // 2
    fit_error = distance_mm(truth, fitted, hidden)  # as CSD and the reference measure it
    one = fit_error_reference(residuals[:-1], fitted, truth, hidden, 1)
    eight = fit_error_reference(residuals[:-1], fitted, truth, hidden, 8)
    assert one["best_set_mm"] == pytest.approx(one["corrected_fit_mm"])
    # the bias, most of each residual here, is taken off
    assert eight["corrected_fit_mm"] < 0.5 * fit_error
    assert eight["best_set_mm"] < eight["corrected_fit_mm"]


def test_the_reference_only_sees_the_hidden_vertices() -> None:
    residuals, _, _ = _residuals(50, 6)
    truth = np.random.default_rng(7).normal(0.0, 0.05, (_V, 3))
    fitted = truth - residuals[-1]
    hidden = np.arange(_V) >= _V // 2
    reference = fit_error_reference(residuals[:-1], fitted, truth, hidden, 8, seed=1)
    elsewhere = residuals[:-1].copy()
    elsewhere[:, ~hidden] = 0.5  # what the residuals do where the face is seen changes nothing
    moved = fitted.copy()
    moved[~hidden] += 1.0
    assert fit_error_reference(elsewhere, moved, truth, hidden, 8, seed=1) == reference
