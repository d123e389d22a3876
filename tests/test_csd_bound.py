"""The oracles' CSD references: checked against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import torch

from d3dface.bench.csd_bound import anchored_oracle, csd_bound
from d3dface.facemodel.landmark_embedding import (
    EXPRESSION_MAX,
    EXPRESSION_PROBABILITY,
    rendered_face_coefficients,
)
from d3dface.facemodel.model import FaceModel


def _lower_face(model: FaceModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(visible, occluded) vertex masks: the front of the face split at the nose tip."""
    template = model.template
    face = model.vertex_part == 0
    nose = int(torch.where(face, template[:, 2], torch.tensor(-1.0)).argmax())
    front = face & (template[:, 2] > template[nose, 2] - 0.07)
    occluded = front & (template[:, 1] < template[nose, 1])
    return front & ~occluded, occluded


def test_more_samples_get_nearer_and_one_sample_is_the_mean(face_model: FaceModel) -> None:
    visible, occluded = _lower_face(face_model)
    one = csd_bound(face_model, visible, occluded, 1)
    eight = csd_bound(face_model, visible, occluded, 8)
    sixteen = csd_bound(face_model, visible, occluded, 16)
    # one sample: k-means puts it at the mean of the errors, i.e. the posterior mean itself
    assert np.isclose(one["best_set_mm"], one["posterior_mean_mm"], rtol=0.02)
    assert sixteen["best_set_mm"] < eight["best_set_mm"] < eight["posterior_mean_mm"]
    assert eight == csd_bound(face_model, visible, occluded, 8)  # seeded


def test_exact_observations_shrink_the_error(face_model: FaceModel) -> None:
    visible, occluded = _lower_face(face_model)
    sharp = csd_bound(face_model, visible, occluded, 4, noise_m=1e-4)
    blurred = csd_bound(face_model, visible, occluded, 4, noise_m=1e-2)
    assert sharp["posterior_mean_mm"] < blurred["posterior_mean_mm"]
    # seeing nothing useful, the error is the prior spread of the hidden part
    assert blurred["posterior_mean_mm"] > 2.0


def _prior_mean_face(model: FaceModel) -> np.ndarray:
    """(V, 3) the mean of the benchmark's faces, through the model's own forward pass: zero
    identity, every expression weight at its mean (active with probability p, uniform)."""
    weight = EXPRESSION_PROBABILITY * EXPRESSION_MAX / 2.0
    expression = torch.full((1, model.n_expression), weight)
    return model(expression=expression)[0].double().numpy()


def test_anchored_oracle_guesses_the_mean_face_exactly(face_model: FaceModel) -> None:
    visible, occluded = (mask.numpy() for mask in _lower_face(face_model))
    mean_face = _prior_mean_face(face_model)
    figures = anchored_oracle(face_model, mean_face, mean_face, visible, occluded, 8, 0.001)
    assert figures["posterior_mean_mm"] < 1e-3
    # the samples spread where the face is hidden and hold what it observes
    assert figures["asd_o_mm"] > 10 * figures["asd_v_mm"]


def test_anchored_oracle_samples_beat_its_guess_and_looser_ones_leave_the_observation(
    face_model: FaceModel,
) -> None:
    visible, occluded = (mask.numpy() for mask in _lower_face(face_model))
    generator = torch.Generator().manual_seed(5)
    guesses, best, spread = [], [], {0.001: [], 0.004: []}
    for _ in range(8):
        identity, expression = rendered_face_coefficients(face_model, generator)
        truth = face_model(identity, expression)[0].double().numpy()
        for noise, found in spread.items():
            figures = anchored_oracle(face_model, truth, truth, visible, occluded, 8, noise)
            found.append(figures["asd_v_mm"])
            if noise == 0.001:
                guesses.append(figures["posterior_mean_mm"])
                best.append(figures["best_set_mm"])
    assert np.mean(best) < np.mean(guesses)
    assert np.mean(spread[0.004]) > np.mean(spread[0.001])


def test_anchored_oracle_carries_its_samples_to_the_truths_frame(face_model: FaceModel) -> None:
    # with a similarity T to the truth's frame, every figure is T's scale times the figure
    # against the truth carried back by T^-1: distances between T(x) and y are s |x - T^-1(y)|
    visible, occluded = (mask.numpy() for mask in _lower_face(face_model))
    identity, expression = rendered_face_coefficients(face_model, torch.Generator().manual_seed(3))
    observed = face_model(identity, expression)[0].double().numpy()
    angle, scale, shift = 0.2, 1.07, np.array([0.004, -0.002, 0.006])
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])
    truth = observed + 0.002 * np.random.default_rng(0).standard_normal(observed.shape)
    truth_back = (truth - shift) @ rotation / scale  # T^-1(truth)
    carried = anchored_oracle(
        face_model,
        observed,
        truth,
        visible,
        occluded,
        8,
        0.002,
        to_truth=(rotation, scale, shift),
    )
    at_home = anchored_oracle(face_model, observed, truth_back, visible, occluded, 8, 0.002)
    for name, value in at_home.items():
        assert np.isclose(carried[name], scale * value, rtol=1e-9), name
