"""The quick modes of the stage-2 and speed benchmarks run and write their figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from d3dface.bench.__main__ import main as bench_main
from d3dface.bench.speed import DEFAULT_PHOTO


def test_diversity_benchmark_quick(tmp_path: Path) -> None:
    argv = ["diversity", "--quick", "--no-auto-mask", "--fit-iterations", "40", "--out"]
    assert bench_main([*argv, str(tmp_path)]) == 0
    results = json.loads((tmp_path / "diversity.json").read_text())
    overall = results["table1"]["true mask"]["overall"]
    for method in ("Global+DPP", "Global+Local+DPP", "Global+Local+VAE", "ours"):
        figures = overall[method]
        assert figures["asd_o_mm"] > 0 and figures["csd_mm"] > 0
        # the closest sample at its offset's best length is no farther than the fit or the
        # closest sample as it is (per face, so also on average)
        assert figures["csd_best_length_mm"] <= overall["fit_occluded_mm"] + 1e-9
        assert figures["csd_best_length_mm"] <= figures["csd_mm"] + 1e-9
        assert -1.0 <= figures["best_cosine"] <= 1.0
    # the oracle's best N samples are nearer the truth than its single best guess
    assert 0 < overall["oracle_best_mm"] < overall["oracle_mean_mm"]
    # the fit-error reference was learned on the quick mode's held-out fits and measured
    assert overall["fit_error_best_mm"] > 0 and overall["fit_error_corrected_mm"] > 0
    # the anchored oracle in both frames at each noise, and a looser hold lets its samples
    # part where visible
    for frame in ("anchored", "anchored_own_frame"):
        anchored = overall[frame]
        assert list(anchored) == ["1", "2", "4"]
        assert anchored["4"]["asd_v_mm"] > anchored["1"]["asd_v_mm"] > 0
        assert all(figures["best_set_mm"] > 0 for figures in anchored.values())
    assert overall["ours"]["asd_ratio"] > overall["Global+Local+VAE"]["asd_ratio"]
    # every method's and reference's gain over the fit, in distance and in squared distance
    gains = overall["gains"]
    assert set(gains) == {
        *("Global+DPP", "Global+Local+DPP", "Global+Local+VAE", "ours, direct decoding", "ours"),
        *(f"anchored oracle, sigma {noise} mm" for noise in ("1", "2", "4")),
        *(f"anchored oracle, fit's frame, sigma {noise} mm" for noise in ("1", "2", "4")),
        "fit-error model: best N",
    }
    csd = overall["ours"]["csd_mm"]
    assert gains["ours"]["gain"] == pytest.approx(1.0 - csd / overall["fit_occluded_mm"])
    report = (tmp_path / "diversity.md").read_text()
    assert "(40 in the stage-1 fit)" in report
    assert "## Table 1, true mask" in report and "fit-error model: best N" in report
    assert "Directions, true mask" in report
    assert "| anchored oracle, sigma 4 mm |" in report
    assert "| anchored oracle, fit's frame, sigma 4 mm |" in report
    assert "Gain over the fit in two units, true mask" in report and "| gain in MSE |" in report
    assert (tmp_path / "diversity_ratio.png").is_file()


def test_speed_benchmark_quick(tmp_path: Path) -> None:
    if not DEFAULT_PHOTO.is_file():
        pytest.skip(f"shared test photo not found at {DEFAULT_PHOTO}")
    assert bench_main(["speed", "--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "speed.json").read_text())
    row = results["rows"]["2"]
    for stage in ("detect", "mask", "fit", "diversity", "export", "total"):
        assert row[stage] >= 0.0
    assert row["total"] >= row["fit"] + row["diversity"]
    assert row["peak_rss_mib"] > 100
    large = results["large_rows"]["8"]
    assert large["total"] >= large["fit"] + large["diversity"] and large["peak_rss_mib"] > 100
    assert "enlarged to 2560 px" in (tmp_path / "speed.md").read_text()
