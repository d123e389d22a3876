"""The shipped Mesh-VAE (lite) loads with from_pretrained and matches the face model."""

from __future__ import annotations

from pathlib import Path

import torch

from d3dface.facemodel.model import FaceModel
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
