"""Save and load a :class:`FaceModel` as ``model.safetensors`` + ``config.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from d3dface.facemodel.model import FaceModel
from d3dface.hub import (
    CONFIG_NAME,
    ConfigEntries,
    WeightsError,
    descriptive_entries,
    load_weights,
    require_tensors,
    require_vertex_count,
    resolve_model_folder,
    save_weights,
)

KIND = "d3dface.face_model"
_REQUIRED = ["template", "faces", "identity_basis", "expression_basis"]
_OPTIONAL = [
    "region_weights",
    "local_basis",
    "landmark_faces",
    "landmark_bary",
    "joint_regressor",
    "skin_weights",
    "pose_basis",
    "parents",
    "source_index",
    "vertex_part",
]


def save_face_model(
    model: FaceModel, directory: str | Path, extra_config: dict[str, Any] | None = None
) -> Path:
    """Write the model's buffers and names, with the descriptive config entries it was loaded
    with (``model.extra_config``: licence notice, units, build settings) updated by
    ``extra_config``."""
    tensors = {name: getattr(model, name) for name in _REQUIRED + _OPTIONAL}
    config = {**_own_config(model), **model.extra_config, **(extra_config or {})}
    return save_weights(directory, tensors, config, KIND)


def _own_config(model: FaceModel) -> dict[str, Any]:
    """The config entries :func:`save_face_model` writes from the model itself (sizes and
    names); the others are descriptive (``model.extra_config``)."""
    return {
        "name": model.name,
        "n_vertices": model.n_vertices,
        "n_faces": model.n_faces,
        "n_identity": model.n_identity,
        "n_expression": model.n_expression,
        "expression_names": model.expression_names,
        "region_names": model.region_names,
        "n_local": model.n_local,
        "n_landmarks": model.n_landmarks,
        "joint_names": model.joint_names,
    }


def face_model_dir(path_or_repo: str | Path, **hub_kwargs: Any) -> Path:
    """The local folder of the face model in a directory or Hub repo id: the folder itself, or
    the face model's folder of a pipeline (``checkpoints/``, the published Hub repo), as the
    pipeline's config.json names it. ``hub_kwargs``: revision, cache_dir, token, subfolder,
    force_download (see :func:`d3dface.hub.resolve_model_folder`)."""
    return resolve_model_folder(path_or_repo, "face_model", **hub_kwargs)


def load_face_model(path_or_repo: str | Path, **hub_kwargs: Any) -> FaceModel:
    """Load a face model from a directory or a Hub repo id, or from the face model folder of
    a pipeline's (:func:`face_model_dir`, which takes ``hub_kwargs``); WeightsError when it is
    unusable (a config entry of the wrong type is named with what it should be)."""
    directory = face_model_dir(path_or_repo, **hub_kwargs)
    tensors, config = load_weights(directory, KIND)
    require_tensors(tensors, _REQUIRED, directory)
    entries = ConfigEntries(config, directory / CONFIG_NAME)
    require_vertex_count(entries, tensors["template"], directory)
    names = {
        key: entries.texts(key, default=[])
        for key in ("expression_names", "region_names", "joint_names")
    }
    model_name = entries.text("name", default="face_model")
    optional: dict[str, torch.Tensor | None] = {name: tensors.get(name) for name in _OPTIONAL}
    if not names["joint_names"]:
        for name in ("joint_regressor", "skin_weights", "pose_basis", "parents"):
            optional[name] = None
    try:
        model = FaceModel(
            template=tensors["template"],
            faces=tensors["faces"],
            identity_basis=tensors["identity_basis"],
            expression_basis=tensors["expression_basis"],
            name=model_name,
            **names,
            **optional,
        )
    except ValueError as err:
        raise WeightsError(
            f"'{directory}' holds an inconsistent face model: {err}; re-download or rebuild it"
        ) from err
    model.extra_config = descriptive_entries(config, _own_config(model))
    return model
