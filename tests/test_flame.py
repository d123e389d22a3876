"""FLAME support: safe reading of ``generic_model.pkl`` and the torch articulation."""

from __future__ import annotations

import codecs
import os
import pickle
import pickletools
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from flame_fixture import (
    FLAME_PARENTS,
    make_tiny_flame,
    pickled_object,
    write_flame_pickle,
    write_tiny_flame,
)
from scipy.sparse import csc_matrix
from scipy.spatial.transform import Rotation

from d3dface.facemodel.flame import (
    FLAME_JOINTS,
    FlameData,
    FlameFormatError,
    axis_angle_to_matrix,
    linear_blend_skinning,
    load_flame,
)

N_SHAPE, N_EXP = 6, 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[FlameData, dict]:
    """The tiny FLAME file as loaded, and the arrays it was written from."""
    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"
    content = write_tiny_flame(path, n_shape=N_SHAPE, n_exp=N_EXP)
    return load_flame(path, n_shape=N_SHAPE), content


def _tensors(data: FlameData, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """The articulation arrays of ``data`` as torch tensors.

    The skinning weights are renormalised in ``dtype``: stored as float32, their rows sum to 1
    only to float32 precision.
    """
    weights = torch.from_numpy(data.skin_weights).to(dtype)
    return {
        "j_regressor": torch.from_numpy(data.j_regressor).to(dtype),
        "parents": torch.from_numpy(data.parents),
        "skin_weights": weights / weights.sum(dim=1, keepdim=True),
        "pose_basis": torch.from_numpy(data.pose_basis).to(dtype),
    }


def _shaped(data: FlameData, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """(B, V, 3) float64 template plus random shape and expression blendshapes."""
    gen = torch.Generator().manual_seed(seed)
    shape = torch.randn(batch, len(data.shape_basis), generator=gen, dtype=torch.float64)
    expr = torch.randn(batch, len(data.expression_basis), generator=gen, dtype=torch.float64)
    return (
        torch.from_numpy(data.v_template).double()
        + torch.einsum("bk,kvc->bvc", shape, torch.from_numpy(data.shape_basis).double())
        + torch.einsum("bk,kvc->bvc", expr, torch.from_numpy(data.expression_basis).double())
    )


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("with_chumpy", [True, False])
@pytest.mark.parametrize("with_sparse", [True, False])
def test_load_returns_the_written_arrays(
    tmp_path: Path, with_chumpy: bool, with_sparse: bool
) -> None:
    path = tmp_path / "generic_model.pkl"
    content = write_tiny_flame(path, with_chumpy=with_chumpy, with_sparse=with_sparse)
    data = load_flame(path, n_shape=N_SHAPE)

    shapedirs = content["shapedirs"].transpose(2, 0, 1)
    expected = {
        "v_template": content["v_template"],
        "faces": content["f"],
        "shape_basis": shapedirs[:N_SHAPE],
        "expression_basis": shapedirs[N_SHAPE:],
        "pose_basis": content["posedirs"].transpose(2, 0, 1),
        "j_regressor": content["J_regressor"],
        "skin_weights": content["weights"],
        "parents": np.array(FLAME_PARENTS),
    }
    for name, array in expected.items():
        loaded = getattr(data, name)
        assert loaded.shape == array.shape, name
        assert loaded.dtype == (np.int64 if name in ("faces", "parents") else np.float32), name
        np.testing.assert_allclose(loaded, array, rtol=1e-6, atol=1e-9, err_msg=name)
    assert "chumpy" not in sys.modules


def test_fixture_writes_chumpy_and_scipy_references_without_them(tmp_path: Path) -> None:
    csc_module = sys.modules["scipy.sparse._csc"]
    path = tmp_path / "generic_model.pkl"
    write_tiny_flame(path)
    opcodes = list(pickletools.genops(path.read_bytes()))
    assert opcodes[0][0].name == "PROTO" and opcodes[0][1] == 2
    globals_ = {arg for op, arg, _ in opcodes if op.name == "GLOBAL"}
    assert {"chumpy.ch Ch", "scipy.sparse._csc csc_matrix"} <= globals_
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    assert sys.modules["scipy.sparse._csc"] is csc_module


def test_csr_joint_regressor_is_read(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    content = make_tiny_flame()
    write_flame_pickle(path, content, sparse_format="csr")
    np.testing.assert_allclose(load_flame(path).j_regressor, content["J_regressor"], rtol=1e-6)


def test_default_split_is_all_shape_for_a_small_file(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    write_tiny_flame(path, n_shape=N_SHAPE, n_exp=N_EXP)
    data = load_flame(path)
    assert data.shape_basis.shape == (N_SHAPE + N_EXP, 30, 3)
    assert data.expression_basis.shape == (0, 30, 3)


def test_default_split_is_300_shape_100_expression_for_400_columns(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    content = write_tiny_flame(path, n_shape=300, n_exp=100)
    data = load_flame(path)
    assert data.shape_basis.shape == (300, 30, 3)
    assert data.expression_basis.shape == (100, 30, 3)
    np.testing.assert_allclose(
        data.expression_basis[-1], content["shapedirs"][..., -1], rtol=1e-6, atol=1e-12
    )


def test_n_shape_beyond_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    write_tiny_flame(path)
    with pytest.raises(ValueError, match=r"n_shape must lie in \[0, 10\]"):
        load_flame(path, n_shape=11)


def test_empty_arrays_from_python3_pickles_are_read(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    write_flame_pickle(path, {**make_tiny_flame(), "extra": np.zeros(0)})
    assert load_flame(path).v_template.shape == (30, 3)


# ----------------------------------------------------------------------------- refusing


class _RunsShellCommand:
    """Pickles as a call of ``os.system(command)``, as a malicious model file would."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = _RunsShellCommand(f"touch {shlex.quote(str(marker))}")
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({**make_tiny_flame(), "v_template": payload}, protocol=2))

    with pytest.raises(
        FlameFormatError, match=rf'disallowed object "{os.system.__module__}.system"'
    ):
        load_flame(path)
    assert not marker.exists()

    pickle.loads(path.read_bytes())  # control: the payload is real
    assert marker.exists()


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        (eval, "builtins.eval"),
        (getattr, "builtins.getattr"),
        (subprocess.Popen, "subprocess.Popen"),
        (np.load, f"{np.load.__module__}.load"),
    ],
)
def test_any_other_global_is_refused(tmp_path: Path, obj: object, name: str) -> None:
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({**make_tiny_flame(), "extra": obj}, protocol=4))
    with pytest.raises(FlameFormatError, match=f'disallowed object "{name}".*not a FLAME model'):
        load_flame(path)


class _EncodesWith:
    """Pickles as a call of ``_codecs.encode(text, encoding)``."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding

    def __reduce__(self) -> tuple:
        return codecs.encode, ("text", self.encoding)


def test_byte_strings_only_in_latin1(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({**make_tiny_flame(), "extra": _EncodesWith("rot13")}))
    with pytest.raises(FlameFormatError, match="unexpected byte-string encoding 'rot13'"):
        load_flame(path)


def test_chumpy_expression_without_value_is_refused(tmp_path: Path) -> None:
    content = make_tiny_flame()
    derived = pickled_object("chumpy.reordering", "Select", {"a": content["posedirs"], "idxs": 1})
    path = tmp_path / "generic_model.pkl"
    write_flame_pickle(path, {**content, "posedirs": derived}, with_chumpy=False)
    with pytest.raises(FlameFormatError, match="'posedirs': chumpy expression without"):
        load_flame(path)


def test_inconsistent_sparse_matrix_is_refused(tmp_path: Path) -> None:
    content = make_tiny_flame()
    matrix = csc_matrix(content["J_regressor"])
    state = {
        "_shape": matrix.shape,
        "indptr": matrix.indptr,
        "indices": matrix.indices + 5,
        "data": matrix.data,
    }
    bad = pickled_object("scipy.sparse._csc", "csc_matrix", state)
    path = tmp_path / "generic_model.pkl"
    write_flame_pickle(path, {**content, "J_regressor": bad}, with_sparse=False)
    with pytest.raises(FlameFormatError, match=r"'J_regressor': inconsistent sparse matrix"):
        load_flame(path)


def _valid_bytes() -> bytes:
    return pickle.dumps(make_tiny_flame(), protocol=2)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not a readable FLAME pickle"),
        (_valid_bytes()[:500], "not a readable FLAME pickle"),
        (b"v 0 0 0\nv 1 0 0\nf 1 2 3\n", "not a readable FLAME pickle"),
        (pickle.dumps([1, 2, 3], protocol=2), "holds a dict, found list"),
        (pickle.dumps({"v_template": np.zeros((3, 3))}), r"missing FLAME keys \['f', 'shapedirs'"),
    ],
    ids=["empty", "truncated", "text", "list", "missing-keys"],
)
def test_unreadable_files_are_refused(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(raw)
    with pytest.raises(FlameFormatError, match=message):
        load_flame(path)


def _bad_faces(content: dict) -> dict:
    faces = content["f"].copy()
    faces[0, 1] = 30
    return {"f": faces}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: {"shapedirs": c["shapedirs"][1:]},
            r"'shapedirs': expected shape \(30, 3, \*\), found \(29, 3, 10\)",
        ),
        (
            lambda c: {"posedirs": c["posedirs"][..., :27]},
            r"'posedirs': expected shape \(30, 3, 36\), found \(30, 3, 27\)",
        ),
        (
            lambda c: {"weights": c["weights"][:, :4]},
            r"'weights': expected shape \(30, 5\), found \(30, 4\)",
        ),
        (
            lambda c: {"J_regressor": c["J_regressor"][:, 1:]},
            r"'J_regressor': expected shape \(\*, 30\), found \(5, 29\)",
        ),
        (
            lambda c: {"v_template": c["v_template"][:, :2]},
            r"'v_template': expected shape \(\*, 3\), found \(30, 2\)",
        ),
        (
            lambda c: {"kintree_table": c["kintree_table"][:, :4]},
            r"'kintree_table': expected shape \(2, 5\), found \(2, 4\)",
        ),
        (
            lambda c: {"kintree_table": c["kintree_table"][:, [0, 2, 1, 3, 4]]},
            r"'kintree_table': joint 1 has parent id 1",
        ),
        (lambda c: {"f": np.full((4, 3), "a")}, r"'f': expected a numeric array, found dtype <U1"),
        (lambda c: {"weights": np.full((30, 5), np.nan)}, r"'weights': contains non-finite values"),
        (_bad_faces, r"'f': vertex indices must lie in \[0, 30\), found \[0, 30\]"),
    ],
    ids=[
        "shapedirs",
        "posedirs",
        "weights",
        "J_regressor",
        "v_template",
        "kintree-size",
        "kintree-order",
        "faces-dtype",
        "nan",
        "faces-range",
    ],
)
def test_wrong_shapes_are_refused(
    tmp_path: Path, change: Callable[[dict], dict], message: str
) -> None:
    content = make_tiny_flame()
    path = tmp_path / "generic_model.pkl"
    write_flame_pickle(path, {**content, **change(content)})
    with pytest.raises(FlameFormatError, match=message):
        load_flame(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "generic_model.pkl"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_flame(path)


def test_error_is_a_value_error() -> None:
    assert issubclass(FlameFormatError, ValueError)


# ----------------------------------------------------------------------------- articulation


def test_joint_names() -> None:
    assert FLAME_JOINTS == ("root", "neck", "jaw", "eye_left", "eye_right")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_pose_returns_shaped(tiny: tuple[FlameData, dict], dtype: torch.dtype) -> None:
    data, _ = tiny
    shaped = _shaped(data).to(dtype)
    pose = torch.zeros(2, 5, 3, dtype=dtype)
    posed = linear_blend_skinning(shaped, pose, **_tensors(data, dtype))
    atol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(posed, shaped, atol=atol, rtol=0)


def test_root_rotation_is_rigid_about_the_root_joint(tiny: tuple[FlameData, dict]) -> None:
    data, _ = tiny
    shaped = _shaped(data)
    rotvec = np.array([0.3, -0.2, 0.5])
    pose = torch.zeros(2, 5, 3, dtype=torch.float64)
    pose[:, 0] = torch.from_numpy(rotvec)
    posed = linear_blend_skinning(shaped, pose, **_tensors(data))

    rot = torch.from_numpy(Rotation.from_rotvec(rotvec).as_matrix())
    root = torch.einsum("v,bvc->bc", torch.from_numpy(data.j_regressor[0]).double(), shaped)
    expected = (shaped - root[:, None]) @ rot.T + root[:, None]
    torch.testing.assert_close(posed, expected, atol=1e-7, rtol=0)


def test_jaw_rotation_moves_only_jaw_skinned_vertices(tiny: tuple[FlameData, dict]) -> None:
    data, _ = tiny
    shaped = _shaped(data, batch=1)
    pose = torch.zeros(1, 5, 3, dtype=torch.float64)
    pose[0, FLAME_JOINTS.index("jaw")] = torch.tensor([0.25, 0.0, 0.0])
    posed = linear_blend_skinning(shaped, pose, **_tensors(data))

    moved = ((posed - shaped).norm(dim=-1) > 1e-12)[0].numpy()
    jaw_skinned = data.skin_weights[:, FLAME_JOINTS.index("jaw")] > 0
    assert jaw_skinned.any() and not jaw_skinned.all()
    np.testing.assert_array_equal(moved, jaw_skinned)


def test_skinning_rejects_inconsistent_inputs(tiny: tuple[FlameData, dict]) -> None:
    data, _ = tiny
    with pytest.raises(ValueError, match="inconsistent skinning inputs"):
        linear_blend_skinning(
            _shaped(data), torch.zeros(2, 4, 3, dtype=torch.float64), **_tensors(data)
        )


def test_skinning_gradcheck(tiny: tuple[FlameData, dict]) -> None:
    data, _ = tiny
    shaped = _shaped(data, batch=1).requires_grad_()
    pose = (0.1 * torch.randn(1, 5, 3, dtype=torch.float64)).requires_grad_()
    tensors = _tensors(data)
    assert torch.autograd.gradcheck(
        lambda s, p: linear_blend_skinning(s, p, **tensors), (shaped, pose)
    )


def test_axis_angle_matches_scipy() -> None:
    gen = np.random.default_rng(0)
    directions = gen.normal(size=(6, 5, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    angles = np.array([0.0, 1e-8, 1e-3, 9.9e-3, 1.01e-2, 0.5, 2.0, np.pi - 1e-6, 3 * np.pi])
    rotvecs = (directions[..., None, :] * angles[:, None]).reshape(6, 5 * len(angles), 3)
    matrices = axis_angle_to_matrix(torch.from_numpy(rotvecs))
    expected = Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_matrix().reshape(*rotvecs.shape, 3)
    assert matrices.shape == (6, 5 * len(angles), 3, 3)
    np.testing.assert_allclose(matrices.numpy(), expected, atol=1e-12)


def test_axis_angle_float32_is_orthonormal() -> None:
    rotvecs = torch.tensor([[0.0, 0.0, 0.0], [1e-4, 0.0, 0.0], [0.0, 0.02, 0.0], [1.0, 2.0, 3.0]])
    matrices = axis_angle_to_matrix(rotvecs)
    eye = torch.eye(3).expand(4, 3, 3)
    torch.testing.assert_close(matrices @ matrices.transpose(-1, -2), eye, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(matrices), torch.ones(4), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "rotvec",
    [[0.0, 0.0, 0.0], [1e-6, -2e-6, 0.0], [3e-3, 5e-3, -8e-3], [0.01, 0.0, 0.0], [0.4, -1.1, 0.7]],
    ids=["zero", "tiny", "small", "at-threshold", "large"],
)
def test_axis_angle_gradcheck(rotvec: list[float]) -> None:
    aa = torch.tensor([rotvec], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    assert torch.autograd.gradgradcheck(axis_angle_to_matrix, (aa,))


def test_axis_angle_gradient_at_zero_is_the_cross_product_matrix() -> None:
    aa = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    jacobian = torch.autograd.functional.jacobian(axis_angle_to_matrix, aa)  # (3, 3, 3)
    for i in range(3):
        axis = torch.zeros(3, dtype=torch.float64)
        axis[i] = 1.0
        expected = torch.linalg.cross(axis.expand(3, 3), torch.eye(3, dtype=torch.float64)).T
        torch.testing.assert_close(jacobian[..., i], expected, atol=1e-12, rtol=0)
