"""``python -m d3dface.bench vae --quick`` on a quickly trained Mesh-VAE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import d3dface.bench.vae as vae_bench
from d3dface.bench import output_folder
from d3dface.bench.vae import PCABaseline, main
from d3dface.vae.train import train

ROOT = Path(__file__).resolve().parents[1]
FACE_MODEL = ROOT / "checkpoints" / "face_model"


def test_pca_completion_matches_projection_when_nothing_is_hidden() -> None:
    generator = torch.Generator().manual_seed(0)
    basis = torch.randn(5, 40 * 3, generator=generator)
    meshes = (torch.randn(200, 5, generator=generator) @ basis).reshape(200, 40, 3)
    pca = PCABaseline.fit(meshes, n_components=8)
    assert len(pca.variance) == 5  # capped by the data's rank
    test = meshes[:3]
    assert torch.allclose(pca.reconstruct(test), test, atol=1e-4)
    completed = pca.complete(test, torch.zeros(3, 40, dtype=torch.bool))
    assert torch.allclose(completed, test, atol=1e-3)
    hidden = torch.zeros(3, 40, dtype=torch.bool)
    hidden[:, :10] = True  # 30 visible vertices pin down 5 coefficients exactly
    assert torch.allclose(pca.complete(test, hidden), test, atol=1e-3)


def test_quick_runs_write_beside_the_committed_results_unless_told() -> None:
    results = Path("bench") / "results"
    assert output_folder(None, False, results) == results
    assert output_folder(None, True, results) == results / "quick"
    assert output_folder(Path("x"), True, results) == Path("x")


@pytest.mark.skipif(not FACE_MODEL.is_dir(), reason="checkpoints/face_model is missing")
def test_quick_benchmark_writes_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vae_dir = tmp_path / "vae"
    train(out_dir=vae_dir, quick=True, face_model=str(FACE_MODEL), progress=False)
    out = tmp_path / "results"
    assert main(["--quick", "--vae", str(vae_dir), "--out", str(out)]) == 0
    results = json.loads((out / "vae.json").read_text())
    assert results["pca_reconstruction_mm"] < 0.01  # the data is linear: PCA is exact
    for key in ("vae_reconstruction_mm", "vae_completion_hidden_mm", "decode16_backward_ms"):
        assert 0 < results[key] < 1000
    assert "| completion, hidden vertices |" in (out / "vae.md").read_text()
    # without --out, --quick leaves the full run's files alone (found by running the README's
    # `python -m d3dface.bench vae --quick`, which replaced bench/results/vae.*)
    committed = tmp_path / "committed"
    monkeypatch.setattr(vae_bench, "RESULTS_DIR", committed)
    assert main(["--quick", "--vae", str(vae_dir)]) == 0
    assert (committed / "quick" / "vae.json").is_file()
    assert not (committed / "vae.json").exists()
