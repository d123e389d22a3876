"""The offset-direction figures: cosines and the CSD at the offsets' best lengths."""

from __future__ import annotations

import math

import pytest
import torch

from d3dface.bench.offset_directions import offset_direction_figures, required_cosine
from d3dface.metrics import closest_sample_distance


def _case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    fit = torch.randn(50, 3, generator=generator, dtype=torch.float64) * 0.05
    error = torch.randn(50, 3, generator=generator, dtype=torch.float64) * 0.002
    where = torch.arange(50) < 30
    return fit, fit + error, where


def test_an_offset_along_the_error_can_reach_the_truth() -> None:
    fit, truth, where = _case()
    samples = torch.stack([fit + 0.3 * (truth - fit), fit + 5.0 * (truth - fit)])
    figures = offset_direction_figures(samples, fit, truth, where)
    assert figures["best_cosine"] == pytest.approx(1.0)
    assert figures["csd_best_length_mm"] == pytest.approx(0.0, abs=1e-9)


def test_offsets_across_the_error_leave_the_fit_error_and_a_sample_at_the_fit_counts_as_zero() -> (
    None
):
    fit, truth, where = _case(1)
    error = (truth - fit)[where].reshape(-1)
    across = torch.randn(
        error.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    across -= (across @ error) / (error @ error) * error  # orthogonal to the error
    sample = fit.clone()
    sample[where] += across.reshape(-1, 3)
    figures = offset_direction_figures(torch.stack([sample, fit]), fit, truth, where)
    assert figures["best_cosine"] == pytest.approx(0.0, abs=1e-12)
    fit_error = closest_sample_distance(fit[None], truth, where)
    assert figures["csd_best_length_mm"] == pytest.approx(fit_error)


def test_the_best_length_figure_is_the_best_over_lengths_found_by_search() -> None:
    fit, truth, where = _case(3)
    generator = torch.Generator().manual_seed(4)
    offsets = torch.randn(4, 50, 3, generator=generator, dtype=torch.float64) * 0.002
    offsets += 0.7 * (truth - fit)  # leaning towards the truth
    lengths = torch.linspace(0.0, 3.0, 3001, dtype=torch.float64)
    searched = min(
        closest_sample_distance(fit + lengths[:, None, None] * offset, truth, where)
        for offset in offsets
    )
    figures = offset_direction_figures(fit + offsets, fit, truth, where)
    assert figures["csd_best_length_mm"] == pytest.approx(searched, rel=1e-4)
    assert 0.0 < figures["best_cosine"] < 1.0


def test_required_cosine_matches_the_best_length_figure() -> None:
    assert required_cosine(0.3) == pytest.approx(math.sqrt(1 - 0.49))
    fit, truth, where = _case(5)
    error = truth - fit
    other = torch.randn(fit.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    other[where] -= ((other[where] * error[where]).sum() / error[where].pow(2).sum()) * error[where]
    other *= error[where].norm() / other[where].norm()
    cosine = required_cosine(0.3)
    sample = fit + cosine * error + math.sqrt(1 - cosine**2) * other
    figures = offset_direction_figures(sample[None], fit, truth, where)
    fit_error = closest_sample_distance(fit[None], truth, where)
    assert figures["best_cosine"] == pytest.approx(cosine)
    assert figures["csd_best_length_mm"] == pytest.approx(0.7 * fit_error)


def test_an_empty_vertex_set_is_refused() -> None:
    fit, truth, _ = _case()
    with pytest.raises(ValueError, match="empty"):
        offset_direction_figures(fit[None], fit, truth, torch.zeros(50, dtype=torch.bool))


def test_an_exact_fit_leaves_nothing_to_gain() -> None:
    fit, _, where = _case()
    samples = torch.stack([fit, fit + 0.001])
    figures = offset_direction_figures(samples, fit, fit.clone(), where)
    assert figures == {"best_cosine": 0.0, "csd_best_length_mm": 0.0}
