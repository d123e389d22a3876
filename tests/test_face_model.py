"""The shipped face model: sizes, regions, local models, landmark embedding, loading errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from flame_fixture import write_tiny_flame

from d3dface.facemodel.flame import FlameFormatError
from d3dface.facemodel.model import FaceModel
from d3dface.hub import WeightsError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "face_model"


@pytest.fixture(scope="module")
def model(face_model: FaceModel) -> FaceModel:
    """The shipped face model, loaded once for the session (``conftest.face_model``)."""
    return face_model


def test_shipped_model_sizes(model: FaceModel) -> None:
    assert 4000 <= model.n_vertices <= 6000
    assert model.n_identity == 100
    assert model.n_expression == 53
    assert "jawOpen" in model.expression_names
    assert model.n_regions >= 8
    assert {
        "forehead",
        "eye_left",
        "eye_right",
        "nose",
        "mouth",
        "chin",
        "cheek_left",
        "cheek_right",
    } <= set(model.region_names)
    assert model.n_local >= 10
    assert model.n_landmarks == 478


def test_checkpoints_fit_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in (ROOT / "checkpoints").rglob("*") if p.is_file())
    assert total <= 60e6


def test_mesh_is_clean_and_in_metres(model: FaceModel) -> None:
    mesh = trimesh.Trimesh(model.template.numpy(), model.faces.numpy(), process=False)
    assert mesh.is_winding_consistent
    assert (mesh.area_faces > 0).all()
    assert len(np.unique(model.faces.numpy())) == model.n_vertices  # no unused vertex
    height = np.ptp(model.template[:, 1].numpy())
    assert 0.25 < height < 0.45  # a head with neck, in metres
    # the face looks along +z: the nose tip region is the frontmost skin
    nose = model.region_weights[model.region_index("nose")] > 0.9
    assert model.template[nose, 2].max() == model.template[model.vertex_part == 0, 2].max()


def test_vertices_are_ict_vertices(model: FaceModel) -> None:
    source = model.source_index.numpy()
    assert len(np.unique(source)) == model.n_vertices
    assert source.max() < 26719


def test_region_weights_are_soft_and_sum_to_one(model: FaceModel) -> None:
    weights = model.region_weights
    assert torch.allclose(weights.sum(dim=0), torch.ones(model.n_vertices), atol=1e-5)
    assert (weights >= 0).all()
    blended = ((weights > 0.05) & (weights < 0.95)).any(dim=0).sum()
    assert blended > 100  # borders blend over several vertices
    left = model.template[model.region_weights[model.region_index("eye_left")] > 0.5, 0]
    right = model.template[model.region_weights[model.region_index("eye_right")] > 0.5, 0]
    assert left.mean() > 0 > right.mean()  # subject's left is +x


def test_forward_shapes_and_linearity(model: FaceModel) -> None:
    generator = torch.Generator().manual_seed(0)
    identity = torch.randn(2, 100, generator=generator)
    expression = torch.rand(2, 53, generator=generator)
    local = torch.randn(2, model.n_regions, model.n_local, generator=generator)
    vertices = model(identity=identity, expression=expression, local=local)
    assert vertices.shape == (2, model.n_vertices, 3)
    parts = (
        model(identity=identity)
        + model(expression=expression)
        + model(local=local)
        - 2 * model.template
    )
    assert torch.allclose(vertices, parts, atol=1e-6)
    assert torch.equal(model()[0], model.template)


def test_local_model_stays_in_its_region(model: FaceModel) -> None:
    nose = model.region_index("nose")
    local = torch.zeros(1, model.n_regions, model.n_local)
    local[0, nose, 0] = 3.0
    moved = (model(local=local)[0] - model.template).norm(dim=1) > 1e-7
    assert moved.any()
    assert (model.region_weights[nose, moved] > 0).all()


def test_local_models_add_what_the_global_model_cannot(model: FaceModel) -> None:
    """A nose-only change is matched far better by global+local than by global alone."""
    nose = model.region_index("nose")
    local = torch.zeros(1, model.n_regions, model.n_local)
    local[0, nose, :4] = torch.tensor([2.0, -1.5, 1.0, 1.0])
    target = model(local=local)[0] - model.template
    basis = torch.cat([model.identity_basis, model.expression_basis]).reshape(153, -1).T
    solution = torch.linalg.lstsq(basis.double(), target.reshape(-1, 1).double()).solution
    global_residual = (basis.double() @ solution - target.reshape(-1, 1)).norm()
    assert global_residual > 0.3 * target.norm()


def test_landmark_embedding_is_on_the_face(model: FaceModel) -> None:
    assert model.landmark_faces.min() >= 0
    assert model.landmark_faces.max() < model.n_faces
    assert torch.allclose(model.landmark_bary.sum(dim=1), torch.ones(478), atol=1e-4)
    assert (model.landmark_bary > -1e-4).all()
    points = model.landmarks(model.template[None])[0]
    assert points.shape == (478, 3)
    # mediapipe: 1 nose tip, 33 / 263 eye outer corners (subject's right / left), 13 upper lip
    assert points[1, 2] > points[33, 2]
    assert points[33, 0] < points[1, 0] < points[263, 0]
    assert points[13, 1] < points[1, 1] < points[33, 1]
    # iris centres (468, 473) lie on the eyeballs
    eye_vertices = model.faces[model.landmark_faces[[468, 473]]]
    assert (model.vertex_part[eye_vertices] > 0).all()


def test_build_report_records_the_measurements() -> None:
    report = json.loads((SHIPPED / "build_report.json").read_text())
    assert set(report["local_variance_kept"]) >= {"nose", "mouth"}
    assert all(0.8 < v <= 1.0 for v in report["local_variance_kept"].values())
    assert report["reprojection"]["renders"] >= 50


def test_save_and_load_round_trip(model: FaceModel, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path / "copy")
    again = FaceModel.from_pretrained(tmp_path / "copy")
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, getattr(again, name)), name
    assert again.region_names == model.region_names
    assert again.expression_names == model.expression_names


@pytest.fixture()
def model_copy(tmp_path: Path) -> Path:
    target = tmp_path / "face_model"
    shutil.copytree(SHIPPED, target)
    return target


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="neither a model directory nor a Hub repo id"):
        FaceModel.from_pretrained(tmp_path / "nowhere")


def test_missing_weights_file(model_copy: Path) -> None:
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="is missing"):
        FaceModel.from_pretrained(model_copy)


def test_missing_config(model_copy: Path) -> None:
    (model_copy / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"no config\.json"):
        FaceModel.from_pretrained(model_copy)


def test_corrupt_weights(model_copy: Path) -> None:
    path = model_copy / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt"):
        FaceModel.from_pretrained(model_copy)


def test_truncated_weights(model_copy: Path) -> None:
    path = model_copy / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="corrupt"):
        FaceModel.from_pretrained(model_copy)


def test_unreadable_weights_with_matching_hash(model_copy: Path) -> None:
    """A file that is not safetensors at all (hash updated to match) is still refused."""
    from d3dface.hub import sha256_of

    path = model_copy / "model.safetensors"
    path.write_bytes(b"not a safetensors file")
    config = json.loads((model_copy / "config.json").read_text())
    config["weights"]["model.safetensors"]["sha256"] = sha256_of(path)
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="cannot be read"):
        FaceModel.from_pretrained(model_copy)


def test_wrong_version_and_kind(model_copy: Path) -> None:
    config_path = model_copy / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(WeightsError, match="format version 99"):
        FaceModel.from_pretrained(model_copy)
    config_path.write_text(json.dumps({**config, "kind": "d3dface.mesh_vae"}))
    with pytest.raises(WeightsError, match=r"not a .d3dface\.face_model."):
        FaceModel.from_pretrained(model_copy)
    config_path.write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        FaceModel.from_pretrained(model_copy)


def test_flame_model_has_the_same_interface(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    arrays = write_tiny_flame(path, n_vertices=30, n_shape=6, n_exp=4)
    flame = FaceModel.from_flame(path, n_identity=6, n_expression=4, n_shape=6)
    assert flame.n_vertices == 30 and flame.n_identity == 6 and flame.n_expression == 4
    assert flame.joint_names == ["root", "neck", "jaw", "eye_left", "eye_right"]
    identity = torch.randn(1, 6)
    expression = torch.randn(1, 4)
    rest = flame(identity=identity, expression=expression)
    posed = flame(identity=identity, expression=expression, pose=torch.zeros(1, 5, 3))
    assert torch.allclose(rest, posed, atol=1e-6)
    jaw = torch.zeros(1, 5, 3)
    jaw[0, 2, 0] = 0.3
    moved = (flame(pose=jaw) - flame())[0].norm(dim=1) > 1e-6
    jaw_weights = torch.as_tensor(arrays["weights"])[:, 2]
    assert torch.equal(moved, jaw_weights > 0)
    flame.save_pretrained(tmp_path / "flame_saved")
    again = FaceModel.from_pretrained(tmp_path / "flame_saved")
    assert torch.allclose(again(pose=jaw), flame(pose=jaw))


def test_pose_on_the_ict_model_is_a_clear_error(model: FaceModel) -> None:
    with pytest.raises(ValueError, match="jawOpen"):
        model(pose=torch.zeros(1, 5, 3))


def test_bad_coefficients_are_clear_errors(model: FaceModel) -> None:
    with pytest.raises(ValueError, match="identity coefficients must be"):
        model(identity=torch.zeros(1, 101))
    with pytest.raises(ValueError, match="batches differ"):
        model(identity=torch.zeros(2, 10), expression=torch.zeros(3, 53))
    with pytest.raises(ValueError, match="local coefficients must be"):
        model(local=torch.zeros(1, 2, 3))


def test_flame_file_of_the_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(FlameFormatError):
        FaceModel.from_flame(path)
