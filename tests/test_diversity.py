"""Stage 2: metrics, the DPP loss, the latent spaces and the diversity optimiser."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from d3dface.diversity import (
    DPP_REFERENCE_SAMPLES,
    CompletionTarget,
    DiversitySettings,
    diversify,
    interpolate,
)
from d3dface.dpp import dpp_loss, quality, similarity
from d3dface.facemodel.model import FaceModel
from d3dface.figures import head_part, heat_colours, sample_grid, vertex_spread_mm
from d3dface.fitting import FitSettings
from d3dface.hub import CHECKPOINTS_DIR
from d3dface.latent_spaces import ModelSpace, VAESpace
from d3dface.metrics import (
    average_self_distance,
    closest_sample_distance,
    diversity_metrics,
    mesh_distance,
    pairwise_distances,
)
from d3dface.vae.model import MeshVAE


# ---------------------------------------------------------------------- metrics
def test_mesh_distance_is_the_frobenius_norm_over_the_root_of_the_vertex_count() -> None:
    a = torch.zeros(4, 3)
    b = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 12.0]])
    assert float(mesh_distance(a, b)) == pytest.approx(math.sqrt((25 + 0 + 1 + 144) / 4))
    where = torch.tensor([True, False, False, True])
    assert float(mesh_distance(a, b, where)) == pytest.approx(math.sqrt((25 + 144) / 2))
    with pytest.raises(ValueError, match="empty"):
        mesh_distance(a, b, torch.zeros(4, dtype=torch.bool))


def test_asd_is_the_mean_distance_to_the_nearest_other_sample_in_mm() -> None:
    # three one-vertex "meshes" on a line at 0, 1 and 3 mm
    samples = torch.tensor([[[0.0, 0.0, 0.0]], [[0.001, 0.0, 0.0]], [[0.003, 0.0, 0.0]]])
    # nearest others: 1, 1, 2 mm -> mean 4/3
    assert average_self_distance(samples) == pytest.approx(4.0 / 3.0)
    truth = torch.tensor([[0.0025, 0.0, 0.0]])
    assert closest_sample_distance(samples, truth) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two samples"):
        average_self_distance(samples[:1])


def test_diversity_metrics_split_visible_and_occluded_vertices() -> None:
    base = torch.zeros(2, 3)
    offsets = torch.tensor([0.0, 0.002])  # the second vertex moves by 2 mm between samples
    samples = torch.stack([base, base.clone()])
    samples[1, 1, 0] = offsets[1]
    samples[1, 0, 0] = 0.0005  # the visible vertex moves 0.5 mm
    visible = torch.tensor([True, False])
    metrics = diversity_metrics(samples, visible, ~visible)
    assert metrics["asd_v_mm"] == pytest.approx(0.5)
    assert metrics["asd_o_mm"] == pytest.approx(2.0)
    assert metrics["asd_ratio"] == pytest.approx(4.0)
    assert torch.allclose(pairwise_distances(samples).diagonal(), torch.zeros(2))


# ---------------------------------------------------------------------- DPP
def test_quality_keeps_typical_codes_free_and_penalises_far_ones() -> None:
    d = 640
    threshold = d + 3.0 * math.sqrt(2 * d)
    typical = torch.randn(4, d, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(quality(typical, 3.0), torch.ones(4))
    far = torch.full((1, d), math.sqrt((threshold + 2.0) / d))
    assert float(quality(far, 3.0)) == pytest.approx(math.exp(-2.0), rel=1e-3)
    assert float(quality(far, 5.0)) == pytest.approx(1.0)  # a looser threshold frees it


def test_similarity_uses_the_median_off_diagonal_distance_as_length_scale() -> None:
    distances = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]])
    expected = torch.exp(-(0.5 / 2.0) * distances)
    assert torch.allclose(similarity(distances, 0.5), expected)
    assert torch.allclose(similarity(10 * distances, 0.5), expected)  # scale-free


def test_dpp_loss_is_lower_for_spread_samples_and_has_a_finite_gradient() -> None:
    codes = torch.zeros(3, 8)
    close = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    uneven = torch.tensor([[0.0, 0.1, 1.0], [0.1, 0.0, 1.0], [1.0, 1.0, 0.0]])
    loss_even, loss_uneven = dpp_loss(close, codes, 0.5, 3.0), dpp_loss(uneven, codes, 0.5, 3.0)
    assert -3.0 <= float(loss_even) < 0.0
    assert float(loss_even) < float(loss_uneven)  # two near-duplicates are penalised
    # far-away codes lose quality, so the set is worth less
    far_codes = torch.full((3, 8), 3.0)
    assert float(dpp_loss(close, far_codes, 0.5, 3.0)) > float(loss_even)
    distances = close.clone().requires_grad_(True)
    dpp_loss(distances, codes, 0.5, 3.0).backward()
    assert torch.isfinite(distances.grad).all()
    assert (distances.grad[~torch.eye(3, dtype=torch.bool)] < 0).all()  # farther = lower loss


# ---------------------------------------------------------------------- optimiser
@pytest.fixture(scope="module")
def vae() -> MeshVAE:
    return MeshVAE.from_pretrained(CHECKPOINTS_DIR / "mesh_vae_lite").eval().requires_grad_(False)


@pytest.fixture(scope="module")
def target(face_model: FaceModel) -> CompletionTarget:
    """A model face whose lower half (y below the nose tip) is occluded."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        fitted = face_model(torch.randn(1, 100, generator=generator), torch.zeros(1, 53))[0]
    nose_tip = face_model.landmarks(fitted[None])[0, 4]
    front = fitted[:, 2] > nose_tip[2] - 0.06
    occluded = front & (fitted[:, 1] < nose_tip[1]) & (fitted[:, 1] > nose_tip[1] - 0.08)
    return CompletionTarget(fitted, ~occluded, occluded, front & ~occluded)


def test_diversify_spreads_the_hidden_part_and_keeps_the_known_part(
    face_model: FaceModel, vae: MeshVAE, target: CompletionTarget
) -> None:
    settings = DiversitySettings(n_samples=4, iterations=25, photometric_size=0, seed=3)
    space = VAESpace(vae, target.fitted, target.occluded)
    with torch.no_grad():
        start = space.decode(space.initial_codes(4, torch.Generator().manual_seed(3)))
    result = diversify(space, target, face_model.faces, settings)
    assert result.vertices.shape == (4, face_model.n_vertices, 3)
    assert result.codes.shape == (4, 640)
    assert set(result.losses) == {"known", "dpp", "smoothness"}
    before = diversity_metrics(start, target.visible, target.occluded)
    after = diversity_metrics(result.vertices, target.visible, target.occluded)
    assert after["asd_o_mm"] > 1.5 * before["asd_o_mm"]
    assert after["asd_ratio"] > 3.0
    known_error = mesh_distance(result.vertices, target.fitted[None], target.known)
    assert float(known_error.max()) < 0.002  # within 2 mm of the fit where it is known
    again = diversify(space, target, face_model.faces, settings)
    assert torch.equal(result.vertices, again.vertices)  # same seed, same samples


def test_anchored_space_gives_back_the_fit_at_the_posterior_mean(
    vae: MeshVAE, target: CompletionTarget
) -> None:
    anchored = VAESpace(vae, target.fitted, target.occluded)
    direct = VAESpace(vae, target.fitted, target.occluded, anchored=False)
    codes = anchored.initial_codes(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        from_anchored, from_direct = anchored.decode(codes), direct.decode(codes)
    assert torch.allclose(from_anchored[0], target.fitted, atol=1e-6)  # code 0 is the mean
    assert float(mesh_distance(from_direct[:1], target.fitted[None], target.known)) > 1e-4
    # both see the same change between codes: anchoring only moves every mesh by one offset
    assert torch.allclose(from_anchored - from_anchored[0], from_direct - from_direct[0], atol=1e-6)


@pytest.mark.parametrize("n_samples", [4, 16])
def test_the_dpp_term_is_weighed_per_sample_so_its_balance_does_not_change_with_n(
    face_model: FaceModel, vae: MeshVAE, target: CompletionTarget, n_samples: int
) -> None:
    # the other terms are means over the samples; the DPP loss is a sum, so it is scaled by 8/N
    settings = DiversitySettings(n_samples=n_samples, iterations=0, photometric_size=0)
    space = VAESpace(vae, target.fitted, target.occluded)
    result = diversify(space, target, face_model.faces, settings)
    distances = pairwise_distances(result.vertices, target.occluded, 1e-12)
    unscaled = dpp_loss(distances, space.prior_part(result.codes), settings.k, settings.n_sigma)
    expected = settings.dpp_weight * DPP_REFERENCE_SAMPLES / n_samples * float(unscaled)
    assert result.losses["dpp"] == pytest.approx(expected, rel=1e-5)


def test_one_sample_needs_no_dpp(
    face_model: FaceModel, vae: MeshVAE, target: CompletionTarget
) -> None:
    settings = DiversitySettings(n_samples=1, iterations=3, photometric_size=0)
    result = diversify(
        VAESpace(vae, target.fitted, target.occluded), target, face_model.faces, settings
    )
    assert result.vertices.shape[0] == 1 and "dpp" not in result.losses


def test_interpolation_runs_between_two_codes(vae: MeshVAE, target: CompletionTarget) -> None:
    space = VAESpace(vae, target.fitted, target.occluded)
    codes = space.initial_codes(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        ends = space.decode(codes)
    assert torch.allclose(interpolate(space, codes[0], codes[1], 0.0), ends[0], atol=1e-6)
    assert torch.allclose(interpolate(space, codes[0], codes[1], 1.0), ends[1], atol=1e-6)
    middle = interpolate(space, codes[0], codes[1], 0.5)
    assert torch.allclose(middle, space.decode(codes.mean(0, keepdim=True))[0], atol=1e-6)
    with pytest.raises(ValueError, match="blend t"):
        interpolate(space, codes[0], codes[1], 1.5)


def test_model_space_keeps_expressions_in_range_and_starts_at_the_fit(
    face_model: FaceModel,
) -> None:
    identity, expression = torch.zeros(100), torch.full((53,), 0.5)
    local = torch.zeros(face_model.n_regions, face_model.n_local)
    space = ModelSpace(face_model, identity, expression, local, use_local=True)
    codes = space.initial_codes(3, torch.Generator().manual_seed(0))
    assert codes.shape == (3, 100 + 53 + local.numel())
    assert torch.equal(codes[0], space.start)
    assert space.prior_part(codes).shape == (3, 100 + local.numel())
    codes[:, 100:153] = 2.0
    space.project_(codes)
    assert float(codes[:, 100:153].max()) == 1.0
    with torch.no_grad():
        fitted = face_model(identity[None], expression[None])[0]
    assert torch.allclose(space.decode(space.initial_codes(1, torch.Generator()))[0], fitted)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_samples", 0, "number of samples"),
        ("n_samples", 1000, "number of samples"),
        ("k", 0.0, "k must"),
        ("n_sigma", -1.0, "n_sigma"),
        ("seed", -1, "seed"),
        ("iterations", -5, "iterations"),
        ("n_samples", 2.5, "whole number"),
        ("seed", 1.5, "whole number"),
        ("k", "0.5", "k must be a number"),
        ("n_sigma", None, "n_sigma must be a number"),
    ],
)
def test_absurd_settings_are_refused_with_a_message(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DiversitySettings(**{field: value})


def test_numpy_numbers_are_taken_as_python_numbers() -> None:
    # a numpy seed passed the checks, then failed torch's manual_seed after the whole fit
    settings = DiversitySettings(n_samples=np.int64(3), k=np.float32(0.25), seed=np.int64(7))
    assert type(settings.n_samples) is int and type(settings.seed) is int
    assert type(settings.k) is float and settings.k == 0.25
    torch.Generator().manual_seed(settings.seed)
    json.dumps(asdict(settings))  # the result's summary holds the settings
    assert type(FitSettings(iterations=np.int64(5)).iterations) is int


# ---------------------------------------------------------------------- figures
def test_figures_have_the_documented_shapes(face_model: FaceModel) -> None:
    samples = face_model.template[None].repeat(3, 1, 1)
    samples[1, :, 0] += 0.001
    spread = vertex_spread_mm(samples)
    assert spread.shape == (face_model.n_vertices,)
    assert float(spread.max()) == pytest.approx(math.sqrt(2.0 / 9.0), rel=1e-4)
    part = face_model.faces[:100]
    keep, faces = head_part(part, face_model.n_vertices)
    assert int(keep.sum()) == len(part.unique()) and int(faces.max()) == int(keep.sum()) - 1
    assert torch.equal(torch.nonzero(keep)[:, 0][faces], part)  # same triangles, new numbers
    grid = sample_grid(samples[:, keep], faces, tile=64, columns=2)
    assert grid.shape == (128, 2 * 2 * 64, 3) and grid.dtype == np.uint8
    colours = heat_colours(np.array([0.0, 1.0, 5.0]), 1.0)
    assert np.allclose(colours[0], 0.85) and np.allclose(colours[1], colours[2])
