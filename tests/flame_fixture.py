"""Tiny FLAME-format pickles for tests, written without FLAME, chumpy or scipy's classes.

A real ``generic_model.pkl`` is a protocol-2 pickle of a dict whose ``shapedirs`` and
``posedirs`` are ``chumpy.ch.Ch`` objects (array under the state key ``x``) and whose
``J_regressor`` is a ``scipy.sparse`` csc matrix. :func:`pickled_object` makes throw-away
objects that pickle under such class references, so the files written here look like the real
thing to an unpickler while neither package needs to be importable.
"""

from __future__ import annotations

import pickle
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scipy.sparse import csc_matrix, csr_matrix
from scipy.spatial import ConvexHull

FLAME_PARENTS = (-1, 0, 1, 1, 1)
"""Parents of FLAME's joints root, neck, jaw, eye_left, eye_right."""

_ROOT_PARENT_ID = 4294967295  # what FLAME's kintree_table stores as the root's parent
_RADIUS = 0.1  # metres: a head-sized sphere
# Rest positions (metres, +y up, +z out of the face) the joints are regressed near.
_JOINT_TARGETS = np.array(
    [
        [0.0, -0.10, -0.02],  # root
        [0.0, -0.07, -0.03],  # neck
        [0.0, -0.03, -0.01],  # jaw
        [0.03, 0.02, 0.09],  # eye_left (the subject's left, +x)
        [-0.03, 0.02, 0.09],  # eye_right
    ]
)
_SPARSE_CLASSES = {
    "csc": ("scipy.sparse._csc", "csc_matrix", csc_matrix),
    "csr": ("scipy.sparse._csr", "csr_matrix", csr_matrix),
}


_FAKE_CLASSES: dict[tuple[str, str], type] = {}


def pickled_object(module: str, qualname: str, state: dict) -> object:
    """An object that pickles as an instance of ``module.qualname`` with ``state`` as its state.

    The class exists only here; :func:`write_flame_pickle` makes ``module`` importable while it
    pickles, so the reference can be written.
    """
    key = (module, qualname)
    if key not in _FAKE_CLASSES:
        _FAKE_CLASSES[key] = type(qualname, (), {"__module__": module, "__qualname__": qualname})
    obj = _FAKE_CLASSES[key]()
    obj.__dict__.update(state)
    return obj


@contextmanager
def _importable(classes: set[type]) -> Iterator[None]:
    """Temporarily put a module holding each class in ``sys.modules`` under its ``__module__``.

    A module already there (e.g. the real ``scipy.sparse._csc``) is set aside, then restored;
    missing parent packages (``chumpy`` for ``chumpy.ch``) are added empty, then removed.
    """
    names = {cls.__module__ for cls in classes}
    parents = {name.rsplit(".", i)[0] for name in names for i in range(1, name.count(".") + 1)}
    saved = {name: sys.modules.get(name) for name in names | parents}
    try:
        for name in names:
            sys.modules[name] = types.ModuleType(name)
        for name in parents - names:
            sys.modules.setdefault(name, types.ModuleType(name))
        for cls in classes:
            setattr(sys.modules[cls.__module__], cls.__qualname__, cls)
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _sphere_mesh(n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed triangulated sphere: (V, 3) float64 Fibonacci points, (F, 3) outward faces."""
    i = np.arange(n_vertices) + 0.5
    y = 1 - 2 * i / n_vertices
    ring = np.sqrt(1 - y**2)
    azimuth = np.pi * (1 + 5**0.5) * i
    points = _RADIUS * np.stack([ring * np.sin(azimuth), y, ring * np.cos(azimuth)], axis=1)
    faces = ConvexHull(points).simplices
    corners = points[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inward = np.einsum("fc,fc->f", normals, corners.mean(axis=1)) < 0
    faces[inward] = faces[inward][:, ::-1]
    return points, faces


def _skinning_weights(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 5) weights summing to 1: eyes, a lower-front jaw region, the rest neck and root."""
    n_vertices = len(points)
    weights = np.zeros((n_vertices, 5))
    free = np.ones(n_vertices, dtype=bool)
    for joint in (3, 4):
        anchor = _RADIUS * _JOINT_TARGETS[joint] / np.linalg.norm(_JOINT_TARGETS[joint])
        distance = np.where(free, np.linalg.norm(points - anchor, axis=1), np.inf)
        eye = np.argsort(distance)[:2]
        weights[eye, joint] = 1.0
        free[eye] = False
    jaw = free & (points[:, 1] < -0.2 * _RADIUS) & (points[:, 2] > 0)
    share = rng.uniform(0.6, 1.0, n_vertices)
    weights[jaw, 2] = share[jaw]
    weights[jaw, 1] = 1 - share[jaw]
    rest = free & ~jaw
    weights[rest, 1] = share[rest]
    weights[rest, 0] = 1 - share[rest]
    if not np.all(weights.any(axis=0)):
        raise ValueError(f"{n_vertices} vertices are too few to skin all 5 joints")
    return weights


def make_tiny_flame(
    n_vertices: int = 30, n_shape: int = 6, n_exp: int = 4, seed: int = 0
) -> dict[str, object]:
    """The content of a small FLAME model, with dense arrays, keyed like ``generic_model.pkl``.

    Returns:
        ``v_template`` (V, 3) float64, ``f`` (F, 3) uint32, ``shapedirs`` (V, 3, n_shape + n_exp),
        ``posedirs`` (V, 3, 36) (correctives of joint j only on vertices it skins),
        ``J_regressor`` (5, V) rows summing to 1, ``weights`` (V, 5) rows summing to 1,
        ``kintree_table`` (2, 5) int64, ``J`` (5, 3), ``bs_style`` and ``bs_type``.
    """
    rng = np.random.default_rng(seed)
    points, faces = _sphere_mesh(n_vertices)
    weights = _skinning_weights(points, rng)
    regressor = np.zeros((5, n_vertices))
    for joint, target in enumerate(_JOINT_TARGETS):
        nearest = np.argsort(np.linalg.norm(points - target, axis=1))[:3]
        share = rng.uniform(0.5, 1.5, 3)
        regressor[joint, nearest] = share / share.sum()
    posedirs = 1e-3 * rng.normal(size=(n_vertices, 3, 4, 9))
    posedirs *= (weights[:, 1:] > 0)[:, None, :, None]
    kintree = np.array([[_ROOT_PARENT_ID, *FLAME_PARENTS[1:]], range(5)], dtype=np.int64)
    return {
        "v_template": points,
        "f": faces.astype(np.uint32),
        "shapedirs": 1e-3 * rng.normal(size=(n_vertices, 3, n_shape + n_exp)),
        "posedirs": posedirs.reshape(n_vertices, 3, 36),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
        "J": regressor @ points,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_flame_pickle(
    path: str | Path,
    content: dict[str, object],
    with_chumpy: bool = True,
    with_sparse: bool = True,
    sparse_format: str = "csc",
) -> None:
    """Write ``content`` as a protocol-2 pickle the way FLAME files store it.

    With ``with_chumpy``, ``shapedirs`` and ``posedirs`` become ``chumpy.ch.Ch`` objects (state
    ``{"x": array}``); with ``with_sparse``, ``J_regressor`` becomes a ``scipy.sparse``
    ``sparse_format`` ("csc" or "csr") matrix with state ``_shape``, ``maxprint``, ``indptr``,
    ``indices`` and ``data``. Other values are written as they are.
    """
    content = dict(content)
    if with_chumpy:
        for key in ("shapedirs", "posedirs"):
            content[key] = pickled_object("chumpy.ch", "Ch", {"x": content[key]})
    if with_sparse:
        module, name, sparse_cls = _SPARSE_CLASSES[sparse_format]
        matrix = sparse_cls(content["J_regressor"])
        state = {
            "_shape": matrix.shape,
            "maxprint": 50,
            "indptr": matrix.indptr,
            "indices": matrix.indices,
            "data": matrix.data,
        }
        content["J_regressor"] = pickled_object(module, name, state)
    fakes = {type(value) for value in content.values()} & set(_FAKE_CLASSES.values())
    with _importable(fakes), Path(path).open("wb") as file:
        pickle.dump(content, file, protocol=2)


def write_tiny_flame(
    path: str | Path,
    n_vertices: int = 30,
    n_shape: int = 6,
    n_exp: int = 4,
    with_chumpy: bool = True,
    with_sparse: bool = True,
    seed: int = 0,
) -> dict[str, object]:
    """Write a small valid FLAME-format pickle to ``path``; returns its content, arrays dense.

    See :func:`make_tiny_flame` for the content and :func:`write_flame_pickle` for the layout.
    """
    content = make_tiny_flame(n_vertices, n_shape, n_exp, seed)
    write_flame_pickle(path, content, with_chumpy, with_sparse)
    return content
