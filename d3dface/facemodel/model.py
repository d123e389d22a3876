"""The face model: a linear morphable head model with regional local models.

A :class:`FaceModel` is one ``nn.Module`` whose buffers hold everything needed to make a mesh:

- ``template`` (V, 3): mean mesh in metres, +y up, +z out of the face.
- ``identity_basis`` (K_id, V, 3): identity modes, coefficients ~ N(0, 1).
- ``expression_basis`` (K_exp, V, 3): named expression shapes, weights in [0, 1].
- ``faces`` (F, 3): triangles, counter-clockwise seen from outside.
- ``region_weights`` (R, V): soft region memberships, each column sums to 1.
- ``local_basis`` (R, L, V, 3): one PCA per region, coefficients ~ N(0, 1); the local
  displacement of vertex v is ``sum_r region_weights[r, v] * sum_l c[r, l] * local_basis[r, l, v]``.
- ``vertex_part`` (V,): 0 skin surface, 1 left eyeball, 2 right eyeball.
- ``source_index`` (V,): the vertex of the source model (ICT) each vertex is.
- ``landmark_faces`` (478,) / ``landmark_bary`` (478, 3): mediapipe face-mesh landmarks as
  points on the surface (triangle + barycentric coordinates).
- optional articulation (FLAME): ``joint_regressor`` (J, V), ``skin_weights`` (V, J),
  ``pose_basis`` (P, V, 3), ``parents`` (J,).

Region, local and landmark buffers may be empty (a global-only model, e.g. a user's FLAME file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from d3dface.facemodel.flame import FLAME_JOINTS, linear_blend_skinning, load_flame
from d3dface.torch_state import torch_as_written


class FaceModel(nn.Module):
    """Linear morphable face model (global) plus per-region PCA models (local)."""

    def __init__(
        self,
        template: Tensor,
        faces: Tensor,
        identity_basis: Tensor,
        expression_basis: Tensor,
        expression_names: Sequence[str],
        region_weights: Tensor | None = None,
        region_names: Sequence[str] = (),
        local_basis: Tensor | None = None,
        landmark_faces: Tensor | None = None,
        landmark_bary: Tensor | None = None,
        joint_regressor: Tensor | None = None,
        skin_weights: Tensor | None = None,
        pose_basis: Tensor | None = None,
        parents: Tensor | None = None,
        joint_names: Sequence[str] = (),
        source_index: Tensor | None = None,
        vertex_part: Tensor | None = None,
        name: str = "face_model",
    ) -> None:
        super().__init__()
        n_vertices = template.shape[0]
        self.name = name
        # descriptive config.json entries (licence notice, units, build settings) kept from
        # loading to saving; see d3dface.facemodel.storage
        self.extra_config: dict[str, Any] = {}
        self.expression_names = list(expression_names)
        self.region_names = list(region_names)
        self.joint_names = list(joint_names)
        n_regions, n_joints = len(self.region_names), len(self.joint_names)
        f32, i64 = torch.float32, torch.long
        # (name, given tensor or None, empty/default value, dtype)
        buffers = [
            ("template", template, None, f32),
            ("faces", faces, None, i64),
            ("identity_basis", identity_basis, None, f32),
            ("expression_basis", expression_basis, None, f32),
            ("region_weights", region_weights, torch.zeros(0, n_vertices), f32),
            ("local_basis", local_basis, torch.zeros(n_regions, 0, n_vertices, 3), f32),
            ("landmark_faces", landmark_faces, torch.zeros(0), i64),
            ("landmark_bary", landmark_bary, torch.zeros(0, 3), f32),
            ("source_index", source_index, torch.arange(n_vertices), i64),
            ("vertex_part", vertex_part, torch.zeros(n_vertices), i64),
            ("joint_regressor", joint_regressor, torch.zeros(0, n_vertices), f32),
            ("skin_weights", skin_weights, torch.zeros(n_vertices, 0), f32),
            ("pose_basis", pose_basis, torch.zeros(0, n_vertices, 3), f32),
            ("parents", parents, torch.zeros(0), i64),
        ]
        for buffer_name, given, default, dtype in buffers:
            self.register_buffer(buffer_name, (given if given is not None else default).to(dtype))
        self._check_shapes(n_vertices, n_joints)

    def _check_shapes(self, n_vertices: int, n_joints: int) -> None:
        """Raise ValueError when buffers disagree on vertex, region or joint counts."""
        checks = {
            "faces": (self.faces.ndim == 2 and self.faces.shape[1] == 3),
            "identity_basis": self.identity_basis.shape[1:] == (n_vertices, 3),
            "expression_basis": self.expression_basis.shape[1:] == (n_vertices, 3),
            "expression_names": len(self.expression_names) == self.expression_basis.shape[0],
            "region_weights": self.region_weights.shape == (len(self.region_names), n_vertices),
            "local_basis": self.local_basis.shape[0] == len(self.region_names)
            and self.local_basis.shape[2:] == (n_vertices, 3),
            "landmark_bary": self.landmark_bary.shape == (self.landmark_faces.shape[0], 3),
            "joint_regressor": self.joint_regressor.shape == (n_joints, n_vertices),
            "skin_weights": self.skin_weights.shape == (n_vertices, n_joints),
            "parents": self.parents.shape == (n_joints,),
            "source_index": self.source_index.shape == (n_vertices,),
            "vertex_part": self.vertex_part.shape == (n_vertices,),
        }
        bad = [key for key, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"face model buffers have inconsistent shapes: {', '.join(bad)}")
        if self.faces.numel() and (self.faces.min() < 0 or self.faces.max() >= n_vertices):
            raise ValueError("face model 'faces' index a vertex that does not exist")

    # ------------------------------------------------------------------ sizes
    @property
    def n_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def n_faces(self) -> int:
        return self.faces.shape[0]

    @property
    def n_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[0]

    @property
    def n_regions(self) -> int:
        return len(self.region_names)

    @property
    def n_local(self) -> int:
        """Local PCA components per region (L)."""
        return self.local_basis.shape[1]

    @property
    def n_landmarks(self) -> int:
        return self.landmark_faces.shape[0]

    @property
    def articulated(self) -> bool:
        return len(self.joint_names) > 0

    # ------------------------------------------------------------------ geometry
    def forward(
        self,
        identity: Tensor | None = None,
        expression: Tensor | None = None,
        local: Tensor | None = None,
        pose: Tensor | None = None,
    ) -> Tensor:
        """Vertices of the model for a batch of coefficients.

        Args:
            identity: (B, K_id) or None for the mean identity; fewer than K_id columns use
                the leading modes.
            expression: (B, K_exp) or None for neutral.
            local: (B, R, L) local PCA coefficients or None.
            pose: (B, J, 3) axis-angle per joint (articulated models only; see ``joint_names``).

        Returns:
            (B, V, 3) vertices in metres.
        """
        batch = _batch_size(identity, expression, local, pose)
        vertices = self.template.expand(batch, -1, -1)
        if identity is not None:
            vertices = vertices + _blend(identity, self.identity_basis, "identity")
        if expression is not None:
            vertices = vertices + _blend(expression, self.expression_basis, "expression")
        if local is not None:
            vertices = vertices + self.local_displacement(local)
        if pose is not None:
            if not self.articulated:
                raise ValueError(
                    f"'{self.name}' has no joints, so it takes no pose; open the jaw with the "
                    "'jawOpen' expression and move the head with the camera pose instead"
                )
            if pose.shape[1:] != (len(self.joint_names), 3):
                raise ValueError(
                    f"pose must be (B, {len(self.joint_names)}, 3) axis-angle for joints "
                    f"{self.joint_names}, got {tuple(pose.shape)}"
                )
            vertices = linear_blend_skinning(
                vertices,
                pose,
                self.joint_regressor,
                self.parents,
                self.skin_weights,
                self.pose_basis,
            )
        return vertices

    def local_displacement(self, local: Tensor) -> Tensor:
        """Blended regional displacement: (B, R, L') -> (B, V, 3), L' <= L leading components."""
        if local.ndim != 3 or local.shape[1] != self.n_regions or local.shape[2] > self.n_local:
            raise ValueError(
                f"local coefficients must be (B, {self.n_regions}, <= {self.n_local}), "
                f"got {tuple(local.shape)}"
            )
        basis = self.local_basis[:, : local.shape[2]]
        per_region = torch.einsum("brl,rlvc->brvc", local, basis)
        return torch.einsum("rv,brvc->bvc", self.region_weights, per_region)

    def landmarks(self, vertices: Tensor) -> Tensor:
        """Surface points of the landmark embedding: (B, V, 3) -> (B, N_lmk, 3)."""
        if self.n_landmarks == 0:
            raise ValueError(f"'{self.name}' has no landmark embedding")
        corners = vertices[:, self.faces[self.landmark_faces]]  # (B, N, 3, 3)
        return torch.einsum("bnkc,nk->bnc", corners, self.landmark_bary)

    def region_index(self, name: str) -> int:
        """Position of a named region in ``region_names``."""
        try:
            return self.region_names.index(name)
        except ValueError:
            raise KeyError(f"no region '{name}'; regions are {self.region_names}") from None

    # ------------------------------------------------------------------ loading
    @classmethod
    @torch_as_written()
    def from_pretrained(cls, path_or_repo: str | Path, **hub_kwargs: object) -> FaceModel:
        """Load a saved face model from a local directory or a Hub repo id (``hub_kwargs``:
        revision, cache_dir, token, subfolder, force_download); given a pipeline's (the shipped
        ``checkpoints/``, the published Hub repo), the face model in it."""
        from d3dface.facemodel.storage import load_face_model

        return load_face_model(path_or_repo, **hub_kwargs)

    def save_pretrained(self, directory: str | Path, extra_config: dict | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` to ``directory``; returns it. The config
        keeps the descriptive entries the model was loaded with (``self.extra_config``: the
        licence notice, units, build settings), updated by ``extra_config``."""
        from d3dface.facemodel.storage import save_face_model

        return save_face_model(self, directory, extra_config=extra_config)

    @classmethod
    def from_flame(
        cls,
        path: str | Path,
        n_identity: int = 100,
        n_expression: int = 50,
        n_shape: int | None = None,
    ) -> FaceModel:
        """A global-only model from a user's FLAME ``generic_model.pkl``.

        Read with a restricted unpickler (no arbitrary classes, no chumpy needed). The
        result has identity, expression and pose (joints root, neck, jaw, eye_left,
        eye_right); no regions, local models or landmark embedding. ``n_shape`` is where the
        file's ``shapedirs`` split into shape and expression columns (default: 300 of 400).
        """
        data = load_flame(path, n_shape=n_shape)
        return cls(
            template=torch.from_numpy(data.v_template),
            faces=torch.from_numpy(data.faces),
            identity_basis=torch.from_numpy(data.shape_basis[:n_identity]),
            expression_basis=torch.from_numpy(data.expression_basis[:n_expression]),
            expression_names=[
                f"expression{i:03d}" for i in range(min(n_expression, len(data.expression_basis)))
            ],
            joint_regressor=torch.from_numpy(data.j_regressor),
            skin_weights=torch.from_numpy(data.skin_weights),
            pose_basis=torch.from_numpy(data.pose_basis),
            parents=torch.from_numpy(data.parents),
            joint_names=FLAME_JOINTS[: data.j_regressor.shape[0]],
            name="flame",
        )


def _batch_size(*tensors: Tensor | None) -> int:
    """Common leading dimension of the given coefficient tensors (1 when all are None)."""
    sizes = {t.shape[0] for t in tensors if t is not None}
    if len(sizes) > 1:
        raise ValueError(f"coefficient batches differ in size: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _blend(coefficients: Tensor, basis: Tensor, what: str) -> Tensor:
    """(B, K') coefficients over the leading K' of (K, V, 3) basis -> (B, V, 3)."""
    if coefficients.ndim != 2 or coefficients.shape[1] > basis.shape[0]:
        raise ValueError(
            f"{what} coefficients must be (B, <= {basis.shape[0]}), got {tuple(coefficients.shape)}"
        )
    return torch.einsum("bk,kvc->bvc", coefficients, basis[: coefficients.shape[1]])
