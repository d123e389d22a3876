"""The oracle's CSD reference: checked against a case worked out by hand."""

from __future__ import annotations

import numpy as np
import torch

from d3dface.bench.csd_bound import csd_bound
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
