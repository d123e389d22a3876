"""Reading a user's FLAME ``generic_model.pkl`` safely, and FLAME's articulation in torch.

FLAME (Li et al. 2017) is distributed as a Python-2 era pickle of a dict. Unpickling runs
whatever the file names, so :func:`load_flame` uses :class:`FlameUnpickler`, which accepts only
the handful of names a FLAME file refers to (numpy array reconstruction, scipy's csc/csr sparse
matrices and chumpy's ``Ch``) and refuses everything else. Neither scipy's nor chumpy's code runs
while reading: their objects come back as inert stand-ins whose captured state is turned into
dense numpy arrays here.

The articulation (:func:`linear_blend_skinning`) follows FLAME's model: joints regressed from
the shaped mesh, pose-corrective blendshapes driven by the rotation matrices of the non-root
joints, forward kinematics along the kinematic tree and linear blend skinning.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

FLAME_JOINTS = ("root", "neck", "jaw", "eye_left", "eye_right")
"""FLAME's joints in the file's order: global (root), neck, jaw, left eye, right eye."""

FLAME_SHAPE_COMPONENTS = 300
"""Shape (identity) columns at the front of a 400-column FLAME ``shapedirs``."""

_FULL_SHAPEDIRS = 400
_REQUIRED_KEYS = (
    "v_template",
    "f",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "kintree_table",
)


class FlameFormatError(ValueError):
    """The file is not a readable FLAME model (or refers to objects a FLAME file never holds)."""


@dataclass(frozen=True)
class FlameData:
    """The arrays of a FLAME model, in metres.

    Attributes:
        v_template: (V, 3) float32 mean head.
        faces: (F, 3) int64 triangles.
        shape_basis: (n_shape, V, 3) float32 identity blendshapes.
        expression_basis: (n_exp, V, 3) float32 expression blendshapes.
        pose_basis: (P, V, 3) float32 pose correctives, P = 9 * (J - 1): the flattened
            ``R_j - I`` of joints 1..J-1, in joint order.
        j_regressor: (J, V) float32 joint regressor (dense).
        skin_weights: (V, J) float32 skinning weights.
        parents: (J,) int64 parent joint of each joint, -1 for the root; parents[j] < j.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shape_basis: np.ndarray
    expression_basis: np.ndarray
    pose_basis: np.ndarray
    j_regressor: np.ndarray
    skin_weights: np.ndarray
    parents: np.ndarray


class _ChumpyStandIn:
    """Inert stand-in for a pickled chumpy object; keeps the state that unpickling sets."""

    state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


class _SparseStandIn:
    """Inert stand-in for a pickled scipy sparse matrix; keeps the state that unpickling sets.

    ``compressed_axis`` is 1 for csc (``indptr`` runs over columns) and 0 for csr (rows).
    """

    compressed_axis: int
    state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


class _CscStandIn(_SparseStandIn):
    compressed_axis = 1


class _CsrStandIn(_SparseStandIn):
    compressed_axis = 0


def _latin1_encode(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 writes ``bytes`` into protocol-2 pickles, latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise FlameFormatError(
            f"unexpected byte-string encoding {encoding!r} of a {type(text).__name__} "
            "in a FLAME file"
        )
    return text.encode("latin1")


def _empty_bytes() -> bytes:
    """``bytes()`` as Python 3 writes an empty ``bytes`` into protocol-2 pickles."""
    return b""


# The functions numpy pickles arrays and scalars with, taken from numpy itself so that both
# ``numpy.core`` (numpy 1) and ``numpy._core`` (numpy 2) names resolve to the installed numpy.
_ARRAY_RECONSTRUCT = np.empty(0).__reduce__()[0]
_SCALAR_RECONSTRUCT = np.float64(0).__reduce__()[0]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR_RECONSTRUCT,
    ("numpy._core.multiarray", "scalar"): _SCALAR_RECONSTRUCT,
    ("scipy.sparse.csc", "csc_matrix"): _CscStandIn,
    ("scipy.sparse._csc", "csc_matrix"): _CscStandIn,
    ("scipy.sparse.csr", "csr_matrix"): _CsrStandIn,
    ("scipy.sparse._csr", "csr_matrix"): _CsrStandIn,
    ("chumpy.ch", "Ch"): _ChumpyStandIn,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class FlameUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the names a FLAME model file refers to.

    Allowed: numpy array/dtype/scalar reconstruction, scipy csc/csr matrices and chumpy objects
    (``chumpy.ch.Ch`` and ``chumpy.reordering.*``; both as inert stand-ins), plus the latin-1
    byte strings of Python-3-written protocol-2 pickles. Any other name raises
    :class:`FlameFormatError` before it is imported.
    """

    def __init__(self, file: BinaryIO, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        """Map an allowed ``module.name`` to the object to call; refuse all others."""
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "chumpy.reordering" and name.isidentifier() and not name.startswith("_"):
            return _ChumpyStandIn
        raise FlameFormatError(
            f'{self.source}: the file contains a disallowed object "{module}.{name}" and is '
            "not a FLAME model file"
        )


def _unpickle(path: Path) -> dict:
    """The top-level dict of a FLAME pickle, read with :class:`FlameUnpickler`."""
    if not path.is_file():
        raise FileNotFoundError(f"FLAME model file not found: {path}")
    with path.open("rb") as file:
        try:
            content = FlameUnpickler(file, str(path)).load()
        except FlameFormatError:
            raise
        except Exception as exc:  # any failure to decode an untrusted file is a format error
            raise FlameFormatError(
                f"{path}: not a readable FLAME pickle ({type(exc).__name__}: {exc})"
            ) from exc
    if not isinstance(content, dict):
        raise FlameFormatError(
            f"{path}: a FLAME model file holds a dict, found {type(content).__name__}"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in content]
    if missing:
        raise FlameFormatError(f"{path}: missing FLAME keys {missing}")
    return content


def _sparse_to_dense(matrix: _SparseStandIn, key: str) -> np.ndarray:
    """Dense (rows, cols) array from the captured csc/csr state of a scipy sparse matrix."""
    state = matrix.state
    if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
        state = state[0]
    if not isinstance(state, dict):
        raise FlameFormatError(f"'{key}': sparse matrix without its stored arrays")
    shape = state.get("_shape", state.get("shape"))
    try:
        data = np.asarray(state["data"], dtype=np.float64).ravel()
        indices = np.asarray(state["indices"], dtype=np.int64).ravel()
        indptr = np.asarray(state["indptr"], dtype=np.int64).ravel()
        n_rows, n_cols = (int(size) for size in shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise FlameFormatError(f"'{key}': malformed sparse matrix state ({exc})") from exc
    axis = matrix.compressed_axis
    n_outer, n_inner = (n_cols, n_rows) if axis == 1 else (n_rows, n_cols)
    if (
        min(n_rows, n_cols) < 0
        or indptr.shape != (n_outer + 1,)
        or indptr[0] != 0
        or np.any(np.diff(indptr) < 0)
        or indptr[-1] != data.size
        or indices.size != data.size
        or np.any((indices < 0) | (indices >= n_inner))
    ):
        raise FlameFormatError(f"'{key}': inconsistent sparse matrix of shape ({n_rows}, {n_cols})")
    outer = np.repeat(np.arange(n_outer), np.diff(indptr))
    dense = np.zeros((n_rows, n_cols), dtype=np.float64)
    rows, cols = (indices, outer) if axis == 1 else (outer, indices)
    np.add.at(dense, (rows, cols), data)
    return dense


def _as_array(value: object, key: str) -> np.ndarray:
    """A finite numeric numpy array from an array, a chumpy stand-in or a sparse stand-in."""
    while isinstance(value, _ChumpyStandIn):
        state = value.state
        if not isinstance(state, dict) or "x" not in state:
            raise FlameFormatError(
                f"'{key}': chumpy expression without a stored value 'x' (cannot be evaluated "
                "without chumpy)"
            )
        value = state["x"]
    array = _sparse_to_dense(value, key) if isinstance(value, _SparseStandIn) else value
    if not isinstance(array, np.ndarray):
        raise FlameFormatError(f"'{key}': expected a numeric array, found {type(value).__name__}")
    if array.dtype.kind not in "biuf":
        raise FlameFormatError(f"'{key}': expected a numeric array, found dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise FlameFormatError(f"'{key}': contains non-finite values")
    return array


def _check_shape(array: np.ndarray, key: str, expected: tuple[int | None, ...]) -> None:
    """Raise unless ``array.shape`` matches ``expected`` (None matches any size)."""
    ok = array.ndim == len(expected) and all(
        want is None or want == got for want, got in zip(expected, array.shape, strict=False)
    )
    if not ok:
        shown = ", ".join("*" if want is None else str(want) for want in expected)
        raise FlameFormatError(f"'{key}': expected shape ({shown}), found {array.shape}")


def _parents_from_kintree(kintree: np.ndarray, n_joints: int) -> np.ndarray:
    """(J,) parent indices from FLAME's (2, J) ``kintree_table`` (row 0 parent ids, row 1 ids).

    The first column is the root; every other joint's parent must come earlier.
    """
    _check_shape(kintree, "kintree_table", (2, n_joints))
    if kintree.dtype.kind not in "iu":
        raise FlameFormatError(f"'kintree_table': expected integers, found {kintree.dtype}")
    column_of = {int(joint): column for column, joint in enumerate(kintree[1])}
    if len(column_of) != n_joints:
        raise FlameFormatError(f"'kintree_table': repeated joint ids {kintree[1].tolist()}")
    parents = np.full(n_joints, -1, dtype=np.int64)
    for column in range(1, n_joints):
        parent = column_of.get(int(kintree[0, column]), n_joints)
        if parent >= column:
            raise FlameFormatError(
                f"'kintree_table': joint {column} has parent id {int(kintree[0, column])}, "
                "expected an earlier joint"
            )
        parents[column] = parent
    return parents


def load_flame(path: str | Path, n_shape: int | None = None) -> FlameData:
    """Read a FLAME ``generic_model.pkl`` (2020/2023 layout) without chumpy or arbitrary code.

    Args:
        path: the user's FLAME pickle.
        n_shape: how many leading ``shapedirs`` columns are identity; the rest are expression.
            Default: 300 of 400 for a full FLAME file, otherwise all columns (no expressions).

    Returns:
        The model's arrays (float32 / int64), in metres.

    Raises:
        FileNotFoundError: no file at ``path``.
        FlameFormatError: not a FLAME pickle, a disallowed object in it, a missing key or
            a wrong / inconsistent shape.
    """
    path = Path(path)
    content = _unpickle(path)
    arrays = {key: _as_array(content[key], key) for key in _REQUIRED_KEYS}

    v_template = arrays["v_template"]
    _check_shape(v_template, "v_template", (None, 3))
    n_vertices = v_template.shape[0]
    if n_vertices == 0:
        raise FlameFormatError("'v_template': expected at least one vertex, found (0, 3)")

    faces = arrays["f"]
    _check_shape(faces, "f", (None, 3))
    if faces.dtype.kind not in "iu":
        raise FlameFormatError(f"'f': expected integer vertex indices, found {faces.dtype}")
    if faces.size and (faces.min() < 0 or faces.max() >= n_vertices):
        raise FlameFormatError(
            f"'f': vertex indices must lie in [0, {n_vertices}), found "
            f"[{faces.min()}, {faces.max()}]"
        )

    shapedirs = arrays["shapedirs"]
    _check_shape(shapedirs, "shapedirs", (n_vertices, 3, None))
    n_columns = shapedirs.shape[2]
    if n_shape is None:
        n_shape = FLAME_SHAPE_COMPONENTS if n_columns == _FULL_SHAPEDIRS else n_columns
    if not 0 <= n_shape <= n_columns:
        raise ValueError(f"n_shape must lie in [0, {n_columns}] for this file, got {n_shape}")

    j_regressor = arrays["J_regressor"]
    _check_shape(j_regressor, "J_regressor", (None, n_vertices))
    n_joints = j_regressor.shape[0]
    if n_joints == 0:
        raise FlameFormatError(
            f"'J_regressor': expected at least one joint, found (0, {n_vertices})"
        )
    _check_shape(arrays["weights"], "weights", (n_vertices, n_joints))
    posedirs = arrays["posedirs"]
    _check_shape(posedirs, "posedirs", (n_vertices, 3, 9 * (n_joints - 1)))

    parents = _parents_from_kintree(arrays["kintree_table"], n_joints)

    basis = np.ascontiguousarray(shapedirs.transpose(2, 0, 1), dtype=np.float32)
    return FlameData(
        v_template=np.ascontiguousarray(v_template, dtype=np.float32),
        faces=np.ascontiguousarray(faces, dtype=np.int64),
        shape_basis=basis[:n_shape].copy(),
        expression_basis=basis[n_shape:].copy(),
        pose_basis=np.ascontiguousarray(posedirs.transpose(2, 0, 1), dtype=np.float32),
        j_regressor=np.ascontiguousarray(j_regressor, dtype=np.float32),
        skin_weights=np.ascontiguousarray(arrays["weights"], dtype=np.float32),
        parents=parents,
    )


# Below this squared angle (rad^2) the Rodrigues coefficients use their Taylor series, which
# keeps values and gradients finite at zero; the truncation error there is below 1e-16.
_SMALL_ANGLE_SQ = 1e-4


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rotation matrices from axis-angle vectors (Rodrigues), differentiable everywhere.

    ``R = I + a K + b K^2`` with ``K`` the cross-product matrix of ``aa``,
    ``a = sin(t) / t`` and ``b = (1 - cos(t)) / t^2`` for ``t = |aa|``.

    Args:
        aa: (..., 3) rotation axis times angle in radians.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    if aa.shape[-1] != 3:
        raise ValueError(f"axis-angle must be (..., 3), got {tuple(aa.shape)}")
    theta_sq = (aa * aa).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    half = theta / 2
    a = torch.where(small, 1 - theta_sq / 6 + theta_sq**2 / 120, torch.sin(theta) / theta)
    b = torch.where(
        small, 0.5 - theta_sq / 24 + theta_sq**2 / 720, 0.5 * (torch.sin(half) / half) ** 2
    )
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def linear_blend_skinning(
    shaped: Tensor,
    pose: Tensor,
    j_regressor: Tensor,
    parents: Tensor,
    skin_weights: Tensor,
    pose_basis: Tensor,
) -> Tensor:
    """Pose FLAME-style: pose correctives, forward kinematics and linear blend skinning.

    Args:
        shaped: (B, V, 3) vertices after the shape and expression blendshapes.
        pose: (B, J, 3) axis-angle of each joint relative to its parent (FLAME order: root,
            neck, jaw, eye_left, eye_right); the root rotates about its own regressed position.
        j_regressor: (J, V) joint regressor; joints are ``j_regressor @ shaped``.
        parents: (J,) parent of each joint, -1 for the root (joint 0); parents[j] < j.
        skin_weights: (V, J) skinning weights, rows summing to 1.
        pose_basis: (9 * (J - 1), V, 3) correctives driven by the flattened ``R_j - I``, j >= 1.

    Returns:
        (B, V, 3) posed vertices; a zero pose returns ``shaped``.
    """
    batch, n_vertices, _ = shaped.shape
    n_joints = j_regressor.shape[0]
    parent_list = [int(p) for p in parents.tolist()]
    if (
        pose.shape != (batch, n_joints, 3)
        or j_regressor.shape != (n_joints, n_vertices)
        or skin_weights.shape != (n_vertices, n_joints)
        or pose_basis.shape != (9 * (n_joints - 1), n_vertices, 3)
        or len(parent_list) != n_joints
    ):
        raise ValueError(
            f"inconsistent skinning inputs: shaped {tuple(shaped.shape)}, pose "
            f"{tuple(pose.shape)}, j_regressor {tuple(j_regressor.shape)}, parents "
            f"{tuple(parents.shape)}, skin_weights {tuple(skin_weights.shape)}, pose_basis "
            f"{tuple(pose_basis.shape)}"
        )
    if parent_list[0] != -1 or any(not 0 <= p < j for j, p in enumerate(parent_list) if j):
        raise ValueError(
            f"parents must be -1 for joint 0 and earlier joints after, got {parent_list}"
        )

    joints = torch.einsum("jv,bvc->bjc", j_regressor, shaped)  # (B, J, 3)
    rotations = axis_angle_to_matrix(pose)  # (B, J, 3, 3)
    eye = torch.eye(3, dtype=shaped.dtype, device=shaped.device)
    pose_feature = (rotations[:, 1:] - eye).reshape(batch, -1)  # (B, 9 (J - 1))
    posed = shaped + torch.einsum("bp,pvc->bvc", pose_feature, pose_basis)

    world_rot = [rotations[:, 0]]  # each (B, 3, 3)
    world_pos = [joints[:, 0]]  # each (B, 3): posed joint positions
    for j in range(1, n_joints):
        p = parent_list[j]
        offset = (joints[:, j] - joints[:, p])[..., None]  # (B, 3, 1)
        world_rot.append(world_rot[p] @ rotations[:, j])
        world_pos.append(world_pos[p] + (world_rot[p] @ offset)[..., 0])
    rot = torch.stack(world_rot, dim=1)  # (B, J, 3, 3)
    # Joint transforms act on rest-pose points: x -> R_j (x - joint_j) + posed_joint_j.
    trans = torch.stack(world_pos, dim=1) - (rot @ joints[..., None])[..., 0]  # (B, J, 3)

    blended_rot = torch.einsum("vj,bjmn->bvmn", skin_weights, rot)
    blended_trans = torch.einsum("vj,bjm->bvm", skin_weights, trans)
    return torch.einsum("bvmn,bvn->bvm", blended_rot, posed) + blended_trans
