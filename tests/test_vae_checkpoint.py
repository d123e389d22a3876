"""The shipped Mesh-VAE (lite) loads with from_pretrained and matches the face model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from d3dface.facemodel.model import FaceModel
from d3dface.hub import WeightsError, sha256_of
from d3dface.vae.model import MeshVAE

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def test_shipped_lite_vae_loads_and_reconstructs() -> None:
    vae = MeshVAE.from_pretrained(CHECKPOINTS / "mesh_vae_lite").eval()
    face_model = FaceModel.from_pretrained(CHECKPOINTS / "face_model")
    assert vae.n_vertices == face_model.n_vertices
    assert torch.equal(vae.faces, face_model.faces)
    assert vae.latent_shape == (10, 64)
    generator = torch.Generator().manual_seed(123)
    mesh = face_model(identity=torch.randn(1, 100, generator=generator))
    with torch.no_grad():
        mu, logvar = vae.encode(mesh)
        decoded = vae.decode(mu)
    assert mu.shape == logvar.shape == (1, 10, 64)
    error_mm = (decoded - mesh).norm(dim=-1).mean() * 1000
    mean_face_error_mm = (face_model.template - mesh).norm(dim=-1).mean() * 1000
    assert error_mm < 0.5 * mean_face_error_mm  # it learned the faces, not just the mean


def test_frozen_vae_decodes_as_the_trainable_one() -> None:
    vae = MeshVAE.from_pretrained(CHECKPOINTS / "mesh_vae_lite").eval()
    codes = torch.randn(3, 10, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        trainable = vae.decode(codes)
    vae.requires_grad_(False)  # inference: the blocks cache their per-vertex weights
    with torch.no_grad():
        frozen = vae.decode(codes)
    assert any(getattr(m, "_frozen_weights", None) is not None for m in vae.modules())
    torch.testing.assert_close(frozen, trainable, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        ("offset_mean", r"offset_mean is \(5041, 3\) but the template is \(5042, 3\)"),
        ("structure.down0.index", r"neighbourhood 'down0': index \(1371, \d+\) and mask"),
        ("structure.level2", r"neighbourhood 'down1' has 271 rows for the 270 vertices"),
        ("structure.up1.mask", r"neighbourhood 'up1': index \(1372, \d+\) and mask \(1371"),
    ],
)
def test_a_tensor_cut_short_is_refused_when_loading(
    tensor: str, expected: str, tmp_path: Path
) -> None:
    """A tensor that lost a row (its sha256 updated) fails at load, not at inference."""
    folder = tmp_path / "vae"
    shutil.copytree(CHECKPOINTS / "mesh_vae_lite", folder)
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    tensors[tensor] = tensors[tensor][:-1].clone()
    save_file(tensors, str(weights))
    config = json.loads((folder / "config.json").read_text())
    config["weights"]["model.safetensors"]["sha256"] = sha256_of(weights)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=expected) as caught:
        MeshVAE.from_pretrained(folder)
    assert "inconsistent Mesh-VAE" in str(caught.value) and "\n" not in str(caught.value)
