"""Mesh-VAE: pooling structure, vcConv against a reference, model shapes, storage, training."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from d3dface.facemodel.model import FaceModel
from d3dface.hub import WeightsError
from d3dface.vae.data import FaceMeshSampler, seeded_generator
from d3dface.vae.graph import UniformLaplacian
from d3dface.vae.layers import VCBlock, VCConv, contract_per_basis, contract_per_vertex
from d3dface.vae.model import MeshVAE, VAEConfig, vae_config
from d3dface.vae.structure import (
    PAPER_LEVEL_FRACTIONS,
    MeshStructure,
    Neighbourhood,
    StructureConfig,
    build_structure,
    designed_level_sizes,
)
from d3dface.vae.train import STATE_NAME, main, start_from_release, train, write_release

ROOT = Path(__file__).resolve().parents[1]
FACE_MODEL = Path(os.environ.get("D3DFACE_FACE_MODEL", ROOT / "checkpoints" / "face_model"))
needs_face_model = pytest.mark.skipif(
    not (FACE_MODEL / "config.json").is_file(), reason=f"no face model at {FACE_MODEL}"
)
TINY_STRUCTURE = StructureConfig(level_fractions=(0.3, 0.1, 0.04, 0.015))
TINY_VAE = VAEConfig("tiny", widths=(4, 4, 8, 8, 8, 8), latent_channels=8, structure=TINY_STRUCTURE)


def grid_mesh(n: int, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """An n x n vertex grid, 0.1 m wide, gently curved: (n*n, 3) vertices, faces."""
    u, v = torch.meshgrid(torch.linspace(0, 0.1, n), torch.linspace(0, 0.1, n), indexing="ij")
    vertices = torch.stack([u + offset, v, 0.02 * torch.sin(20 * u) * torch.cos(20 * v)], -1)
    ids = torch.arange(n * n).view(n, n)
    corner = ids[:-1, :-1].flatten()
    right, up, diagonal = corner + n, corner + 1, corner + n + 1
    faces = torch.cat(
        [torch.stack([corner, right, diagonal], 1), torch.stack([corner, diagonal, up], 1)]
    )
    return vertices.reshape(-1, 3), faces


@pytest.fixture(scope="module")
def tiny_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    """A 24 x 24 grid plus a separate 3 x 3 patch (a second component, like an eyeball)."""
    grid, grid_faces = grid_mesh(24)
    patch, patch_faces = grid_mesh(3, offset=0.12)
    return torch.cat([grid, patch]), torch.cat([grid_faces, patch_faces + grid.shape[0]])


@pytest.fixture(scope="module")
def tiny_structure(tiny_mesh: tuple[torch.Tensor, torch.Tensor]) -> MeshStructure:
    return build_structure(*tiny_mesh, TINY_STRUCTURE)


@pytest.fixture(scope="module")
def tiny_vae(
    tiny_mesh: tuple[torch.Tensor, torch.Tensor], tiny_structure: MeshStructure
) -> MeshVAE:
    return MeshVAE(TINY_VAE, tiny_structure, *tiny_mesh).eval()


def tensors_equal(a: MeshStructure, b: MeshStructure) -> bool:
    ta, tb = a.to_tensors(), b.to_tensors()
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


# ---------------------------------------------------------------- structure
def test_structure_is_deterministic_and_nested(
    tiny_mesh: tuple[torch.Tensor, torch.Tensor], tiny_structure: MeshStructure
) -> None:
    assert tensors_equal(tiny_structure, build_structure(*tiny_mesh, TINY_STRUCTURE))
    other = build_structure(*tiny_mesh, StructureConfig(TINY_STRUCTURE.level_fractions, seed=1))
    assert not torch.equal(other.levels[1], tiny_structure.levels[1])
    n_vertices = tiny_mesh[0].shape[0]
    assert tiny_structure.level_sizes == designed_level_sizes(
        n_vertices, TINY_STRUCTURE.level_fractions
    )
    for fine, coarse in zip(tiny_structure.levels, tiny_structure.levels[1:], strict=False):
        assert set(coarse.tolist()) <= set(fine.tolist())
    for name, hood in tiny_structure.neighbourhoods.items():
        level = int(name[-1]) + (name.startswith("down"))
        assert hood.index.shape[0] == tiny_structure.level_sizes[level]
        assert hood.mask[:, 0].all()  # every output vertex has a neighbour
    down = tiny_structure.neighbourhoods["down0"]
    assert down.index[down.mask].unique().numel() == n_vertices  # pooling sees every vertex


@needs_face_model
def test_face_model_levels_follow_the_paper(face_model: FaceModel) -> None:
    structure = build_structure(face_model.template, face_model.faces)
    sizes = designed_level_sizes(face_model.n_vertices, PAPER_LEVEL_FRACTIONS)
    assert structure.level_sizes == sizes
    if face_model.n_vertices == 5042:
        assert sizes == [5042, 1372, 271, 45, 10]
    assert designed_level_sizes(5023, PAPER_LEVEL_FRACTIONS) == [5023, 1367, 270, 45, 10]
    assert all(4 <= hood.counts.float().mean() <= 48 for hood in structure.neighbourhoods.values())


# ---------------------------------------------------------------- vcConv
NEIGHBOURS = [[0, 1, 2], [3], [4, 0]]  # output vertex -> input vertices, 5 inputs


def hand_neighbourhood(neighbours: list[list[int]] = NEIGHBOURS) -> Neighbourhood:
    index = torch.zeros(3, 3, dtype=torch.long)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    for v, inputs in enumerate(neighbours):
        index[v, : len(inputs)] = torch.tensor(inputs)
        mask[v, : len(inputs)] = True
    return Neighbourhood(index, mask)


def test_vcconv_shapes() -> None:
    hood = hand_neighbourhood()
    generator = torch.Generator().manual_seed(0)
    conv = VCConv(6, 5, hood, n_bases=17, generator=generator)
    assert conv.coefficients.shape == (3, 3, 17) and conv.basis.shape == (5, 17, 6)
    assert conv(torch.randn(3, 3, 6, 2)).shape == (3, 5, 2)
    pooled = VCBlock(6, 5, hood, True, 17, generator)
    assert pooled(torch.randn(5, 6, 2)).shape == (3, 5, 2)
    same_level = hand_neighbourhood([[0, 1], [1, 2, 0], [2]])
    stride_one = VCBlock(6, 5, same_level, False, 17, generator)
    assert stride_one(torch.randn(3, 6, 2)).shape == (3, 5, 2)


def test_vcconv_matches_a_dense_reference() -> None:
    torch.manual_seed(0)
    hood = hand_neighbourhood()
    conv = VCConv(4, 3, hood, n_bases=5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(5, 4, 2)  # (V_in, C, B)
    gathered = conv_gather(x, hood)
    adjacency = torch.zeros(3, 5)
    for v, inputs in enumerate(NEIGHBOURS):
        adjacency[v, inputs] = 1.0
    bias = conv.bias[..., None]
    # every slot (padding included) selects basis 2: y_v = sum_{j in N(v)} B_2 x_j + b_v
    with torch.no_grad():
        conv.coefficients.zero_()
        conv.coefficients[:, :, 2] = 1.0
    expected = torch.einsum("vj,oi,jib->vob", adjacency, conv.basis[:, 2], x) + bias
    torch.testing.assert_close(conv(gathered), expected)
    # random coefficients: explicit per-slot weights W_vk = sum_m A_vkm B_m
    with torch.no_grad():
        conv.coefficients.normal_()
    expected = bias.expand(-1, -1, 2).clone()
    for v, inputs in enumerate(NEIGHBOURS):
        for k, j in enumerate(inputs):
            weight = torch.einsum("m,omi->oi", conv.coefficients[v, k], conv.basis)
            expected[v] += weight @ x[j]
    torch.testing.assert_close(conv(gathered), expected)
    masked = conv.masked_coefficients()
    for contract in (contract_per_vertex, contract_per_basis):
        torch.testing.assert_close(contract(gathered, masked, conv.basis) + bias, expected)


def conv_gather(x: torch.Tensor, hood: Neighbourhood) -> torch.Tensor:
    """Reference gather by plain indexing: (V_in, C, B) -> (V_out, K, C, B)."""
    return x[hood.index]


def test_pooled_block_is_conv_plus_density_average() -> None:
    hood = hand_neighbourhood()
    block = VCBlock(4, 3, hood, True, 5, torch.Generator().manual_seed(2))
    x = torch.randn(5, 4, 2)
    average = torch.stack([x[inputs].mean(dim=0) for inputs in NEIGHBOURS])
    expected = F.elu(block.conv(conv_gather(x, hood)) + block.channel_map @ average)
    torch.testing.assert_close(block(x), expected)


def test_frozen_blocks_reuse_their_weights_and_notice_changes() -> None:
    hood = hand_neighbourhood()
    block = VCBlock(4, 2, hood, True, 5, torch.Generator().manual_seed(3))
    x = torch.randn(5, 4, 3)
    training = block(x)
    block.requires_grad_(False)
    assert block.frozen_weights() is not None  # 5 bases, 2 outputs: per-vertex is cheaper
    torch.testing.assert_close(block(x), training)
    with torch.no_grad():
        block.conv.basis.mul_(2.0)  # an in-place change must rebuild the cached weights
    changed = block(x)
    block.requires_grad_(True)
    torch.testing.assert_close(changed, block(x))
    assert block.frozen_weights() is None


def test_uniform_laplacian_ignores_translation(
    tiny_mesh: tuple[torch.Tensor, torch.Tensor],
) -> None:
    vertices, faces = tiny_mesh
    laplacian = UniformLaplacian(faces, vertices.shape[0])
    moved = vertices + torch.tensor([0.3, -0.2, 0.1])
    torch.testing.assert_close(laplacian(moved[None]), laplacian(vertices[None]))


# ---------------------------------------------------------------- model
def test_encode_decode_shapes(
    tiny_vae: MeshVAE, tiny_mesh: tuple[torch.Tensor, torch.Tensor]
) -> None:
    vertices = tiny_mesh[0] + 0.001 * torch.randn(3, *tiny_mesh[0].shape)
    mu, logvar = tiny_vae.encode(vertices)
    assert mu.shape == logvar.shape == (3, *tiny_vae.latent_shape) == (3, 9, 8)
    assert tiny_vae.decode(mu).shape == vertices.shape
    output = tiny_vae(vertices, generator=torch.Generator().manual_seed(0))
    assert output.vertices.shape == vertices.shape
    assert not torch.equal(output.vertices, tiny_vae(vertices).vertices)  # z was sampled


@needs_face_model
def test_lite_and_paper_on_the_face_model(face_model: FaceModel) -> None:
    lite = MeshVAE.from_template("lite", face_model.template, face_model.faces)
    vertices = face_model(torch.randn(2, 10))
    mu, logvar = lite.encode(vertices, torch.rand(2, face_model.n_vertices) < 0.3)
    assert mu.shape == logvar.shape == (2, 10, 64)
    assert lite.decode(mu).shape == (2, face_model.n_vertices, 3)
    paper = MeshVAE.from_template("paper", face_model.template, face_model.faces)
    widths = (3, *vae_config("paper").widths)
    table_in_out = sum(a * b for a, b in itertools.pairwise(widths)) + 2 * 1024 * 64
    table_in_out += sum(a * b for a, b in zip((64, *widths[::-1]), widths[::-1], strict=False))
    # encoder input has a 4th (mask) channel: 17 bases of 4 x 32 instead of 3 x 32
    bases = sum(p.numel() for name, p in paper.named_parameters() if name.endswith("basis"))
    assert bases == 17 * (table_in_out + 32)
    n_parameters = sum(p.numel() for p in paper.parameters())
    assert 25e6 < n_parameters < 40e6
    assert sum(p.numel() for p in lite.parameters()) < n_parameters / 5


def test_hidden_vertices_reach_the_code_only_through_the_mask(
    tiny_vae: MeshVAE, tiny_mesh: tuple[torch.Tensor, torch.Tensor]
) -> None:
    generator = torch.Generator().manual_seed(3)
    vertices = tiny_mesh[0] + 0.002 * torch.randn(2, *tiny_mesh[0].shape, generator=generator)
    hidden = torch.rand(2, vertices.shape[1], generator=generator) < 0.4
    moved = vertices + torch.where(
        hidden[..., None], torch.randn(vertices.shape, generator=generator), 0.0
    )
    with torch.no_grad():
        mu, logvar = tiny_vae.encode(vertices, hidden)
        mu_moved, logvar_moved = tiny_vae.encode(moved, hidden)
        mu_shown, _ = tiny_vae.encode(vertices)
    assert torch.equal(mu, mu_moved) and torch.equal(logvar, logvar_moved)
    assert not torch.allclose(mu, mu_shown)


def test_save_load_round_trip(
    tiny_mesh: tuple[torch.Tensor, torch.Tensor], tiny_structure: MeshStructure, tmp_path: Path
) -> None:
    std = torch.rand(tiny_mesh[0].shape, generator=torch.Generator().manual_seed(4)) + 0.5
    vae = MeshVAE(TINY_VAE, tiny_structure, *tiny_mesh, offset_std=std)
    vae.save_pretrained(tmp_path / "vae")
    loaded = MeshVAE.from_pretrained(tmp_path / "vae")
    assert loaded.config == vae.config
    assert tensors_equal(loaded.structure, vae.structure)
    z = torch.randn(2, *vae.latent_shape)
    vertices = tiny_mesh[0][None].expand(2, -1, -1)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), vae.decode(z))
        assert torch.equal(loaded.encode(vertices)[0], vae.encode(vertices)[0])
    config = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert config["kind"] == "d3dface.mesh_vae" and config["latent_shape"] == [9, 8]
    with pytest.raises(WeightsError):
        MeshVAE.from_pretrained(tmp_path / "missing")


# ---------------------------------------------------------------- data and training
@needs_face_model
def test_masks_hide_up_to_the_requested_fraction(face_model: FaceModel) -> None:
    sampler = FaceMeshSampler(face_model)
    batch = sampler.sample(32, 0.4, seeded_generator(0, "train", 0))
    fractions = batch.hidden.float().mean(dim=1)
    assert (fractions <= 0.4).all() and fractions.max() > 0.2
    again = sampler.sample(32, 0.4, seeded_generator(0, "train", 0))
    assert torch.equal(batch.vertices, again.vertices) and torch.equal(batch.hidden, again.hidden)
    validation = sampler.sample(32, 0.4, seeded_generator(0, "validation", 0))
    assert not torch.equal(batch.vertices, validation.vertices)


@needs_face_model
def test_quick_training_learns_saves_and_resumes_exactly(tmp_path: Path) -> None:
    small = {
        "steps_per_epoch": 6,
        "batch_size": 4,
        "quick": True,
        "face_model": FACE_MODEL,
        "progress": False,
    }
    first = train("lite", tmp_path / "run", epochs=1, **small)
    assert first.step == 6
    assert sum(first.step_losses[:2]) > sum(first.step_losses[-2:])
    loaded = MeshVAE.from_pretrained(tmp_path / "run")
    assert loaded.decode(torch.zeros(1, *loaded.latent_shape)).shape == (1, loaded.n_vertices, 3)
    with pytest.raises(FileExistsError):
        train("lite", tmp_path / "run", epochs=1, **small)
    argv = ["--out", str(tmp_path / "run"), "--resume", "--epochs", "2", "--quick"]
    assert main([*argv, "--face-model", str(FACE_MODEL)]) == 0
    state = json.loads((tmp_path / "run" / STATE_NAME).read_text())
    assert state["step"] == 12 and [entry["step"] for entry in state["history"]] == [6, 12]
    straight = train("lite", tmp_path / "straight", epochs=2, **small)
    resumed = MeshVAE.from_pretrained(tmp_path / "run").state_dict()
    for name, value in MeshVAE.from_pretrained(tmp_path / "straight").state_dict().items():
        assert torch.equal(value, resumed[name]), name
    assert straight.history[-1]["val_all_mm"] == state["history"][-1]["val_all_mm"]


@needs_face_model
def test_a_release_continues_like_a_run_with_fresh_optimiser_moments(tmp_path: Path) -> None:
    small = {"steps_per_epoch": 4, "batch_size": 2, "quick": True, "face_model": FACE_MODEL}
    train("lite", tmp_path / "run", epochs=1, progress=False, **small)
    release = write_release(tmp_path / "run", tmp_path / "release", note="one epoch")
    log = json.loads((release / "training_log.json").read_text())
    assert log["note"] == "one epoch" and log["state"]["step"] == 4 and len(log["history"]) == 1
    released = MeshVAE.from_pretrained(release).state_dict()
    for name, value in MeshVAE.from_pretrained(tmp_path / "run" / "best").state_dict().items():
        assert torch.equal(value, released[name]), name

    argv = ["--out", str(tmp_path / "continued"), "--from-release", str(release)]
    assert main([*argv, "--epochs", "2", "--release-to", str(tmp_path / "second")]) == 0
    state = json.loads((tmp_path / "continued" / STATE_NAME).read_text())
    assert [entry["step"] for entry in state["history"]] == [4, 8]
    assert state["history"][0] == log["history"][0]
    continued = MeshVAE.from_pretrained(tmp_path / "continued").state_dict()
    assert any(not torch.equal(value, continued[name]) for name, value in released.items())
    second = json.loads((tmp_path / "second" / "training_log.json").read_text())
    assert second["state"]["epoch"] == 2 and second["history"] == state["history"]

    # a folder that already holds a run, or one that is not a release: a clear error
    assert main(argv) == 2
    assert main(["--out", str(tmp_path / "other"), "--from-release", str(tmp_path / "run")]) == 2


def test_the_shipped_vae_is_a_release_training_can_continue(tmp_path: Path) -> None:
    start_from_release(ROOT / "checkpoints" / "mesh_vae_lite", tmp_path / "run")
    state = json.loads((tmp_path / "run" / STATE_NAME).read_text())
    assert state["epoch"] == len(state["history"]) and state["step"] == 500 * state["epoch"]
    shipped = MeshVAE.from_pretrained(ROOT / "checkpoints" / "mesh_vae_lite").state_dict()
    for folder in (tmp_path / "run", tmp_path / "run" / "best"):
        for name, value in MeshVAE.from_pretrained(folder).state_dict().items():
            assert torch.equal(value, shipped[name]), name
    with pytest.raises(FileExistsError):
        start_from_release(ROOT / "checkpoints" / "mesh_vae_lite", tmp_path / "run")


def test_a_refused_from_release_leaves_its_out_folder_empty(tmp_path: Path) -> None:
    # `train-vae --from-release checkpoints/mesh_vae_lite --steps-per-epoch 5` was refused
    # (a run cannot change its steps per epoch) only after it had seeded --out, so the
    # corrected command then failed with "already holds a training run" (found by running
    # the README's --from-release command with a shorter epoch)
    release = ROOT / "checkpoints" / "mesh_vae_lite"
    out = tmp_path / "run"
    for option in ("--steps-per-epoch", "--batch-size"):
        assert main(["--out", str(out), "--from-release", str(release), option, "5"]) == 2
        assert not (out / STATE_NAME).exists()
    start_from_release(release, out, steps_per_epoch=500, batch_size=16)  # its own: accepted
    assert (out / STATE_NAME).is_file()


def test_train_vae_help_names_the_command_a_user_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # its usage line read "d3dface train-vae", which is no command (found by reading
    # `python -m d3dface train-vae --help` against the README)
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m d3dface train-vae ")
    assert "(default lite)" in text and "random seed (default 0)" in text
