"""The app under simultaneous requests (the quick form of ``python -m d3dface.bench load``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("gradio_client", reason="gradio is not installed")

from d3dface.bench.__main__ import main as bench_main


def test_simultaneous_requests_all_complete_with_the_right_outputs(tmp_path: Path) -> None:
    assert bench_main(["load", "--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "load.json").read_text())
    assert results["completed_correctly"] == results["requests"] == 4
    assert results["server_peak_rss_mib"] > 100  # measured, not missing
    assert "| 4 | 4 |" in (tmp_path / "load.md").read_text()
