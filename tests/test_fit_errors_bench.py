"""The fit-errors benchmark: its leave-one-out scoring, summary and quick mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from d3dface.bench.__main__ import main as bench_main
from d3dface.bench.diversity import HeldOutFit
from d3dface.bench.fit_errors import leave_one_out, summarise, to_markdown

_V = 40


def _fits(count: int, seed: int) -> list[HeldOutFit]:
    """``count`` made-up fits per kind of occluder whose residuals on the last half of the
    vertices (the hidden ones) vary along one direction with a 3 mm spread, plus 0.1 mm noise."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((_V, 3))
    direction /= np.linalg.norm(direction)
    hidden = np.arange(_V) >= _V // 2
    fits = []
    for kind in ("glasses", "face mask"):
        for _ in range(count):
            residual = 0.003 * rng.standard_normal() * direction * np.sqrt(_V)
            residual = residual + rng.normal(0.0, 0.0001, (_V, 3))
            fits.append(HeldOutFit(kind, residual, hidden))
    return fits


def test_leave_one_out_scores_each_fit_by_the_others_of_its_kind() -> None:
    fits = _fits(30, 0)
    fits.append(HeldOutFit("random", fits[0].residual, fits[0].occluded))  # alone of its kind
    rows = leave_one_out(fits, reference_counts=(4, 100), sample_counts=(1, 8))
    assert len(rows) == 60  # the lone "random" fit has no reference
    row = rows[0]
    assert set(row) == {"occlusion", "fit_mm", "R=4, N=8", "all, N=1", "all, N=8"}
    assert row["all, N=8"]["references"] == 29 and row["R=4, N=8"]["references"] == 4
    # the fit's error is measured as CSD is: root mean square over the hidden vertices
    hidden = fits[0].residual[fits[0].occluded]
    assert row["fit_mm"] == pytest.approx(np.sqrt((hidden**2).sum(axis=1).mean()) * 1000.0)
    # the single sample is the fit plus the other fits' mean residual, and it is scored in
    # that same measure
    assert row["all, N=1"]["corrected_fit_mm"] < row["fit_mm"]
    assert leave_one_out(fits, (4, 100), (1, 8)) == rows  # seeded
    table = summarise(rows)
    full, one = table["settings"]["all, N=8"], table["settings"]["all, N=1"]
    # one sample is the mean residual, near zero here; eight spread along the one direction
    # the errors take, so the closest comes far nearer than the fit
    assert one["best_set_mm"] == pytest.approx(one["corrected_fit_mm"])
    assert full["gain"] > 0.6 and full["best_set_mm"] < one["best_set_mm"]
    # nearer in distance is nearer still in squared distance when every face gains alike
    assert full["mse_gain"] > full["gain"]
    assert list(table["settings"]) == ["R=4, N=8", "all, N=1", "all, N=8"]
    assert set(table["by_occlusion"]) == {"glasses", "face mask"}
    assert "gain_unlimited_references" in table


def test_the_extrapolation_is_the_intercept_of_the_gain_against_one_over_r() -> None:
    def row(gains: dict[int, float]) -> dict:
        entries = {
            f"R={r}, N=8": {
                "references": r,
                "samples": 8,
                "corrected_fit_mm": 2.0,
                "best_set_mm": 2.0 * (1.0 - g),
            }
            for r, g in gains.items()
        }
        entries["all, N=8"] = entries.pop("R=64, N=8")
        return {"occlusion": "glasses", "fit_mm": 2.0, **entries}

    # gain = 0.25 - 1 / R exactly
    table = summarise([row({r: 0.25 - 1.0 / r for r in (8, 16, 32, 64)})])
    assert table["gain_unlimited_references"] == pytest.approx(0.25)
    assert table["gain_slope_per_inverse_reference"] == pytest.approx(-1.0)
    report = to_markdown({"table": table, "description": "made-up"})
    assert "**25.0%**" in report and "| glasses | 1 | 2.00 |" in report
    # all others at N = 8: gain 0.25 - 1/64 in distance, 1 - (0.75 + 1/64)^2 in squares
    assert "| 23.4% | 41.4% |" in report


def test_fit_errors_benchmark_quick(tmp_path: Path) -> None:
    assert bench_main(["fit-errors", "--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "fit_errors.json").read_text())
    table = results["table"]
    assert table["faces"] == 12
    assert set(table["settings"]) == {"R=2, N=8", "all, N=1", "all, N=8"}
    for entry in table["settings"].values():
        assert entry["fit_mm"] > 0 and entry["best_set_mm"] > 0
    one, eight = table["settings"]["all, N=1"], table["settings"]["all, N=8"]
    assert eight["best_set_mm"] <= one["best_set_mm"] + 1e-9  # more samples, none farther
    assert "12 fitted (40 stage-1 iterations), 12 scored" in results["description"]
    assert "closest of N" in (tmp_path / "fit_errors.md").read_text()
