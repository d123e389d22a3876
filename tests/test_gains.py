"""Gains over the fit in distance and in squared distance."""

from __future__ import annotations

import pytest

from d3dface.bench.gains import distance_gain_of, gains_over_fit, mse_gain_of


def test_gains_are_ratios_of_means_in_distance_and_in_squares() -> None:
    gains = gains_over_fit([2.0, 4.0], [1.0, 3.0])
    assert gains["gain"] == pytest.approx(1.0 - 4.0 / 6.0)
    assert gains["mse_gain"] == pytest.approx(1.0 - (1.0 + 9.0) / (4.0 + 16.0))
    # one face: the two gains are the same nearness in two units
    one = gains_over_fit([2.0], [1.4])
    assert one["mse_gain"] == pytest.approx(mse_gain_of(one["gain"]))
    assert one["gain"] == pytest.approx(distance_gain_of(one["mse_gain"]))
    assert distance_gain_of(0.4) == pytest.approx(0.2254, abs=1e-4)
    assert mse_gain_of(0.3) == pytest.approx(0.51)


def test_gains_need_the_same_faces() -> None:
    with pytest.raises(ValueError, match="same faces"):
        gains_over_fit([2.0, 3.0], [1.0])
    with pytest.raises(ValueError, match="same faces"):
        gains_over_fit([], [])
