"""Stage 1: fit the global + local face model to one photo (after Diverse3DFace, Alg. 1).

Pipeline of :func:`fit_face`:

1. Landmarks: mediapipe's 478 points of the chosen face (largest by default). A landmark is
   *visible* when it lies inside the photo and not on an occluded pixel; only visible
   landmarks are ever used, for the crop, the pose and the landmark term.
2. Crop (:mod:`d3dface.perception.face_crop`): a square around the visible landmarks,
   resampled to ``crop_size`` pixels; crop pixels that touch occluded photo pixels are
   unusable for the photometric term.
3. Camera: a pinhole with a *fixed* field of view (``fov_deg`` across the photo's longer side,
   principal point at the photo centre). A single photo barely constrains the focal length (a
   face is ~10 cm deep at ~1 m), so it is not estimated; the head's distance absorbs the scale.
4. Rigid stage: the mean face's landmarks are placed by a PnP solve on the visible landmarks
   (:func:`d3dface.pose_init.solve_pose`, face-oval points left out: they sit on the silhouette).
5. Non-rigid stage: Adam on pose, identity, expression (kept in [0, 1]), region albedo and SH
   lighting, minimising ``w_lmk L_landmarks + w_photo L_photometric + L_reg``; then the same
   with the local coefficients added (their prior and ``w_smooth L_smooth`` join ``L_reg``),
   the two eye regions' local coefficients at half the learning rate (paper: 0.5x for eye
   components).
6. Per-vertex visibility classes (:mod:`d3dface.visibility`) and the landmark error.

Albedo: the ICT model has no albedo model. The face's albedo is one RGB colour per face region,
blended by the model's soft region weights (``region_albedo``), under 2nd-order SH lighting;
both are estimated with the shape. A few colours cannot copy the photo's texture, so the
photometric term informs the shape through shading. Only facial skin triangles (no eyeballs,
scalp, ears or neck) are drawn for it, and each pixel's error is truncated so that hair, beards
or an occluder's unmasked edge cannot drag the head around.

Defaults and the measurements that chose them (synthetic renders of the model, seeds 60000+,
held apart from the benchmark's 50000+; medians over 4-8 faces, half of them occluded; error =
RMS distance over truly visible facial vertices after a similarity alignment; CPU seconds of
one fit on one thread of a loaded 2-core machine):

- Adam instead of the paper's SGD: on 4 clean faces at 200 iterations, Adam 1.79 mm, SGD at
  lr 5e-3 2.98 mm (2.66 mm after 600 iterations, 23 s), SGD at lr 5e-2 2.55 mm and unstable.
  Parameters are rescaled so that one learning rate serves every group (rotation in 0.1 rad,
  translation in 1 cm across and 5 cm in depth, coefficients in their prior's units).
- Loss weights: mediapipe's landmarks are ~4 px (512 px render) off the embedded points, so a
  fit that trusts them is worse than the mean face; weighting the photometric term up helped
  most. Landmark 1 / photometric 64: median 2.06 mm on 6 faces where the paper's 5 / 16 gave
  2.94 mm (with this module's normalisation of each term, see :class:`FitSettings`).
- Photometric truncation 0.1: no change on renders; without it, a real photo with a drawn face
  mask was fitted in a wrongly turned pose (hair pixels dragged the head).
- Priors: identity 1e-2 (1e-3 let one occluded face diverge to 8.7 mm in 300 iterations),
  expression 0.1 (median 1.90 -> 1.77 mm, and a jaw hidden under a face mask stays closed
  instead of drifting open), local 0.1 (at 1e-3 global+local was 0.5 mm worse than global;
  at 0.1 or 0.01 the two are within 0.01 mm: the renders are faces of the global model, which
  leaves the local models nothing to add but noise).
- Smoothness 1000: 0.00-0.04 mm better than 1e-3 on 4 faces; the local displacements are
  smooth by construction (regional PCAs of smooth meshes), so the term rarely bites.
- 200 iterations: at 150 / 300 iterations median 1.99 / 1.83 mm for 6 / 12 s; 200 keeps a fit
  under 10 s. Working crop 256 px: 192 px was 0.4 mm worse for 30% less time.

Fitting has no random step: the same inputs give the same result.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from d3dface.facemodel.model import FaceModel
from d3dface.fit_terms import (
    landmark_groups,
    landmark_loss,
    landmark_weights,
    photometric_loss,
    region_albedo,
    smoothness_loss,
    smoothness_matrix,
    uniform_laplacian,
)
from d3dface.imageio import ImageSource, load_image
from d3dface.perception.face_crop import DEFAULT_CROP_MARGIN, DEFAULT_CROP_SIZE, FaceCrop, crop_face
from d3dface.perception.landmarks import FaceLandmarks, LandmarkDetector, detect_face
from d3dface.perception.occlusion_mask import check_mask
from d3dface.pose_init import MIN_POSE_POINTS, solve_pose
from d3dface.render import Camera, project, render, rotation_matrix, transform_points
from d3dface.visibility import VISIBLE, classify_vertices

__all__ = ["DEFAULT_ITERATIONS", "FitResult", "FitSettings", "fit_face", "photo_camera"]

DEFAULT_ITERATIONS = 200
"""Non-rigid iterations; chosen from the accuracy / time measurements in the README."""

_ROTATION_UNIT = 0.1  # radians per parameter unit
_TRANSLATION_UNIT = (0.01, 0.01, 0.05)  # metres per parameter unit (x, y, depth)
_SH_CONSTANT = 1.0 / 0.282095  # SH coefficient of a uniform light of intensity 1
_EYE_REGIONS = ("eye_left", "eye_right")
_FACE_AREA_MAX_REST = 0.5  # a vertex is facial when its "rest" region weight is below this


@dataclass(frozen=True)
class FitSettings:
    """Knobs of :func:`fit_face` (defaults: see the module docstring for how they were chosen).

    Attributes:
        iterations: non-rigid iterations in all (global stage + local stage).
        use_local: fit the local models after the global stage (global+local); False fits the
            global model only, for all ``iterations``.
        use_photometric: include the photometric term (and estimate albedo and lighting).
        local_fraction: share of ``iterations`` spent in the local stage.
        optimizer: ``"adam"`` (default) or ``"sgd"`` (the paper's optimiser).
        learning_rate: for every rescaled parameter group (eye local coefficients: times
            ``eye_lr_scale``).
        eye_lr_scale: learning-rate factor of the eye regions' local coefficients.
        landmark_weight: weight of the sum over visible landmarks of weighted squared
            distances in units of half the crop side (group weights: ``fit_terms``).
        photometric_weight: weight of the mean over usable face pixels of the truncated mean
            absolute RGB error (colours in [0, 1]); photometric_truncation: the cap.
        regularisation_weight, expression_regularisation_weight, local_regularisation_weight:
            weights of the sums of squared identity, expression and local coefficients.
        smoothness_weight: weight of the mean squared Laplacian of the local displacement (mm).
        crop_size: working resolution in pixels. crop_margin: crop side over landmark box.
        fov_deg: camera field of view across the photo's longer side.
    """

    iterations: int = DEFAULT_ITERATIONS
    use_local: bool = True
    use_photometric: bool = True
    local_fraction: float = 0.5
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 0.05
    eye_lr_scale: float = 0.5
    landmark_weight: float = 1.0
    photometric_weight: float = 64.0
    photometric_truncation: float = 0.1
    regularisation_weight: float = 1e-2
    expression_regularisation_weight: float = 0.1
    local_regularisation_weight: float = 0.1
    smoothness_weight: float = 1000.0
    crop_size: int = DEFAULT_CROP_SIZE
    crop_margin: float = DEFAULT_CROP_MARGIN
    fov_deg: float = 20.0

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"iterations must be 0 or more, got {self.iterations}")
        if not 0.0 <= self.local_fraction <= 1.0:
            raise ValueError(f"local_fraction must be in [0, 1], got {self.local_fraction}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0.0 < self.fov_deg < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {self.fov_deg}")


@dataclass(frozen=True, eq=False)
class FitResult:
    """The fitted face and everything needed to place it in its photo.

    Attributes:
        identity: (K_id,) identity coefficients. expression: (K_exp,) weights in [0, 1].
        local: (R, L) local coefficients (zeros for a global-only fit).
        rotation: (3, 3) and translation: (3,): model space -> camera space,
            ``vertices_cam = vertices @ rotation.T + translation``.
        camera: the photo's camera (pixels of the full photo; see :mod:`d3dface.render`).
        vertices: (V, 3) fitted mesh in model space, metres.
        vertices_cam: (V, 3) the posed mesh in camera space, metres.
        albedo: (V, 3) per-vertex albedo. sh_coeffs: (9, 3) SH lighting (crop-image units).
        crop: the working crop (its image, unusable-pixel mask and transform to the photo).
        visibility: (V,) int8 classes, see :mod:`d3dface.visibility`.
        landmarks: the detected (or given) landmarks, photo pixels.
        landmark_visible: (478,) bool, landmarks used by the fit.
        landmark_errors_px: (478,) distance in photo pixels between each landmark and the
            fitted model's; NaN where the landmark was not visible.
        losses: final value of each loss term (weighted).
        timings: seconds per step (``detect``, ``rigid``, ``nonrigid``, ``visibility``,
            ``total``).
        settings: the settings used.
    """

    identity: Tensor
    expression: Tensor
    local: Tensor
    rotation: Tensor
    translation: Tensor
    camera: Camera
    vertices: Tensor
    vertices_cam: Tensor
    albedo: Tensor
    sh_coeffs: Tensor
    crop: FaceCrop
    visibility: np.ndarray
    landmarks: FaceLandmarks
    landmark_visible: np.ndarray
    landmark_errors_px: np.ndarray
    losses: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    settings: FitSettings = field(default_factory=FitSettings)

    @property
    def landmark_error_px(self) -> float:
        """Mean landmark reprojection error over the visible landmarks, photo pixels."""
        return float(np.nanmean(self.landmark_errors_px))

    @property
    def visible_fraction(self) -> float:
        """Fraction of the model's vertices classed visible."""
        return float(np.mean(self.visibility == VISIBLE))

    @property
    def crop_camera(self) -> Camera:
        """The camera in the crop's pixels (the one the fit was optimised in)."""
        return _crop_camera(self.camera, self.crop)


def photo_camera(photo_size: tuple[int, int], fov_deg: float) -> Camera:
    """Pinhole camera of a photo: ``fov_deg`` across its longer side, centred principal point."""
    height, width = photo_size
    focal = 0.5 * max(height, width) / math.tan(math.radians(fov_deg) / 2.0)
    return Camera(fx=focal, fy=focal, cx=width / 2.0, cy=height / 2.0, image_size=(height, width))


def fit_face(
    image: ImageSource,
    model: FaceModel,
    occlusion_mask: np.ndarray | None = None,
    landmarks: FaceLandmarks | None = None,
    face_index: int = 0,
    settings: FitSettings | None = None,
    detector: LandmarkDetector | None = None,
) -> FitResult:
    """Fit the face model to one face of a photo.

    Args:
        image: the photo (anything :func:`d3dface.imageio.load_image` accepts).
        model: a face model with regions, local models and a landmark embedding.
        occlusion_mask: ``(H, W)`` bool, True where the face is hidden; these pixels and the
            landmarks on them never enter a data term.
        landmarks: the face's landmarks in photo pixels; detected when None.
        face_index: which face when detecting (0 = largest).
        settings: fitting settings (defaults: :class:`FitSettings`).
        detector: landmark detector to reuse (default: the shared one).

    Returns:
        The :class:`FitResult`.

    Raises:
        ImageError: the image cannot be loaded. NoFaceError: no face found.
        ValueError: bad mask size, bad face index, too few visible landmarks.
    """
    settings = settings or FitSettings()
    if model.n_landmarks == 0 or model.n_regions == 0:
        raise ValueError(f"'{model.name}' lacks a landmark embedding or regions; cannot fit it")
    start = time.perf_counter()
    photo = load_image(image)
    mask = None if occlusion_mask is None else check_mask(occlusion_mask, photo.shape)
    if landmarks is None:
        landmarks = detect_face(photo, face_index, detector)
    timings = {"detect": time.perf_counter() - start}

    clock = time.perf_counter()
    visible = _visible_landmarks(landmarks.points, mask, photo.shape[:2])
    if visible.sum() < MIN_POSE_POINTS:
        raise ValueError(
            f"only {visible.sum()} of the face's {len(visible)} landmarks are visible; at least "
            f"{MIN_POSE_POINTS} are needed (the occlusion mask hides almost the whole face)"
        )
    crop = crop_face(
        photo, landmarks.points[visible], mask, settings.crop_size, settings.crop_margin
    )
    camera = photo_camera(photo.shape[:2], settings.fov_deg)
    problem = _Problem(model, crop, _crop_camera(camera, crop), landmarks.points, visible)
    timings["rigid"] = time.perf_counter() - clock

    clock = time.perf_counter()
    params = problem.optimise(settings)
    timings["nonrigid"] = time.perf_counter() - clock

    clock = time.perf_counter()
    with torch.no_grad():
        vertices, vertices_cam, terms = problem.evaluate(params, settings)
        rotation, translation = problem.pose(params)
        albedo = region_albedo(params["albedo"], model.region_weights)
        projected = project(model.landmarks(vertices_cam[None]), camera)[0, :, :2].numpy()
    visibility = classify_vertices(vertices_cam, model.faces, camera, mask)
    errors = np.linalg.norm(projected - landmarks.points, axis=1)
    timings["visibility"] = time.perf_counter() - clock
    timings["total"] = time.perf_counter() - start
    return FitResult(
        identity=params["identity"].detach()[0],
        expression=params["expression"].detach()[0],
        local=problem.local(params).detach()[0],
        rotation=rotation,
        translation=translation,
        camera=camera,
        vertices=vertices,
        vertices_cam=vertices_cam,
        albedo=albedo,
        sh_coeffs=params["sh"].detach()[0],
        crop=crop,
        visibility=visibility,
        landmarks=landmarks,
        landmark_visible=visible,
        landmark_errors_px=np.where(visible, errors, np.nan),
        losses={name: float(value) for name, value in terms.items()},
        timings={name: round(seconds, 4) for name, seconds in timings.items()},
        settings=settings,
    )


def _visible_landmarks(
    points: np.ndarray, mask: np.ndarray | None, photo_size: tuple[int, int]
) -> np.ndarray:
    """(478,) bool: the landmark lies inside the photo and not on an occluded pixel."""
    height, width = photo_size
    cols, rows = np.floor(points[:, 0]).astype(np.int64), np.floor(points[:, 1]).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    if mask is None:
        return inside
    hidden = np.zeros_like(inside)
    hidden[inside] = mask[rows[inside], cols[inside]]
    return inside & ~hidden


def _crop_camera(camera: Camera, crop: FaceCrop) -> Camera:
    """A photo camera re-expressed in the pixels of a crop of that photo."""
    scale = crop.scale
    return Camera(
        fx=float(camera.fx) * scale,
        fy=float(camera.fy) * scale,
        cx=(float(camera.cx) - crop.origin[0]) * scale,
        cy=(float(camera.cy) - crop.origin[1]) * scale,
        image_size=(crop.size, crop.size),
    )


def _local_basis(model: FaceModel) -> Tensor:
    """(R * L, V, 3) displacement of each local coefficient alone (row-major over R, L):
    ``region_weights[r, v] * local_basis[r, l, v]``, see :meth:`FaceModel.local_displacement`."""
    blended = model.region_weights[:, None, :, None] * model.local_basis
    return blended.reshape(-1, model.n_vertices, 3)


class _Problem:
    """The data of one fit (crop, camera, visible landmarks) and its objective."""

    def __init__(
        self,
        model: FaceModel,
        crop: FaceCrop,
        camera: Camera,
        landmark_points: np.ndarray,
        visible: np.ndarray,
    ) -> None:
        self.model = model
        self.camera = camera
        self.visible = torch.from_numpy(np.flatnonzero(visible))
        self.targets = torch.from_numpy(crop.to_crop(landmark_points[visible])).float()
        self.weights = torch.from_numpy(landmark_weights()[visible]).float()
        self.image = torch.from_numpy(crop.image)
        self.usable = torch.from_numpy(~crop.unusable)
        rest = model.region_weights[model.region_index("rest")]
        facial = (rest < _FACE_AREA_MAX_REST) & (model.vertex_part == 0)
        self.photo_faces = model.faces[facial[model.faces].all(dim=1)]
        self.eye_regions = torch.tensor([model.region_index(name) for name in _EYE_REGIONS])
        others = [i for i in range(model.n_regions) if i not in self.eye_regions.tolist()]
        self.other_regions = torch.tensor(others)
        self.region_order = torch.argsort(torch.cat([self.eye_regions, self.other_regions]))
        self.smoothness = smoothness_matrix(
            uniform_laplacian(model.faces.numpy(), model.n_vertices), _local_basis(model)
        )
        with torch.no_grad():
            mean_landmarks = model.landmarks(model.template[None])[0].double().numpy()
        # the face oval lies on the silhouette, where the mean face's points do not
        for_pose = ~np.isin(np.flatnonzero(visible), landmark_groups()["face_oval"])
        rotation, translation = solve_pose(
            mean_landmarks[visible][for_pose],
            self.targets.double().numpy()[for_pose],
            float(camera.fx),
            (float(camera.cx), float(camera.cy)),
        )
        self.rotation0 = torch.from_numpy(rotation).float()
        self.translation0 = torch.from_numpy(translation).float()

    # ------------------------------------------------------------------ parameters
    def initial_parameters(self) -> dict[str, Tensor]:
        """Leaf tensors of the rescaled parameters at the rigid solution and the mean face."""
        model = self.model
        n_eye, n_other = len(self.eye_regions), len(self.other_regions)
        params = {
            "rotation": torch.zeros(1, 3),
            "translation": torch.zeros(1, 3),
            "identity": torch.zeros(1, model.n_identity),
            "expression": torch.zeros(1, model.n_expression),
            "local_eyes": torch.zeros(1, n_eye, model.n_local),
            "local_other": torch.zeros(1, n_other, model.n_local),
            "albedo": self._initial_albedo().expand(model.n_regions, 3).clone(),
            "sh": torch.zeros(1, 9, 3),
        }
        params["sh"][0, 0] = _SH_CONSTANT
        for tensor in params.values():
            tensor.requires_grad_(True)
        return params

    def _initial_albedo(self) -> Tensor:
        """(3,) mean colour of the usable crop pixels that the posed mean face covers."""
        with torch.no_grad():
            vertices_cam = transform_points(
                self.model.template[None], self.rotation0[None], self.translation0[None]
            )
            _, fragments = render(vertices_cam, self.photo_faces, self.camera)
            valid = fragments.mask[0] & self.usable
            if not bool(valid.any()):
                return torch.full((3,), 0.5)
            return self.image[valid].mean(dim=0)

    def pose(self, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Rotation (3, 3) and translation (3,) of the current pose offsets."""
        delta = rotation_matrix(params["rotation"] * _ROTATION_UNIT)[0]
        unit = params["translation"].new_tensor(_TRANSLATION_UNIT)
        return delta @ self.rotation0, self.translation0 + params["translation"][0] * unit

    def posed(self, vertices: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Model-space vertices (1, V, 3) -> camera space (1, V, 3)."""
        rotation, translation = self.pose(params)
        return transform_points(vertices, rotation[None], translation[None])

    def local(self, params: dict[str, Tensor]) -> Tensor:
        """(1, R, L) local coefficients in region order."""
        joined = torch.cat([params["local_eyes"], params["local_other"]], dim=1)
        return joined[:, self.region_order]

    # ------------------------------------------------------------------ objective
    def evaluate(
        self, params: dict[str, Tensor], settings: FitSettings, with_local: bool = True
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Vertices (V, 3), camera-space vertices (V, 3) and the weighted loss terms."""
        local = self.local(params) if with_local and settings.use_local else None
        vertices = self.model(params["identity"], params["expression"], local)
        vertices_cam = self.posed(vertices, params)
        screen = project(self.model.landmarks(vertices_cam), self.camera)[0, :, :2]
        terms = {
            "landmarks": settings.landmark_weight
            * landmark_loss(
                screen[self.visible], self.targets, self.weights, self.camera.image_size[0] / 2
            )
        }
        if settings.use_photometric:
            albedo = region_albedo(params["albedo"], self.model.region_weights)[None]
            rendered, fragments = render(
                vertices_cam, self.photo_faces, self.camera, albedo=albedo, sh_coeffs=params["sh"]
            )
            valid = fragments.mask[0] & self.usable
            terms["photometric"] = settings.photometric_weight * photometric_loss(
                rendered[0], self.image, valid, settings.photometric_truncation
            )
        terms["regularisation"] = (
            settings.regularisation_weight * params["identity"].pow(2).sum()
            + settings.expression_regularisation_weight * params["expression"].pow(2).sum()
        )
        if local is not None:
            terms["local_regularisation"] = (
                settings.local_regularisation_weight * local.pow(2).sum()
            )
            terms["smoothness"] = settings.smoothness_weight * smoothness_loss(
                local.reshape(-1), self.smoothness
            )
        return vertices[0], vertices_cam[0], terms

    # ------------------------------------------------------------------ optimisation
    def optimise(self, settings: FitSettings) -> dict[str, Tensor]:
        """Run the global stage, then (with ``use_local``) the global+local stage.

        One optimiser runs through both stages; the local coefficients join it as new
        parameter groups, so the global parameters keep their optimiser state.
        """
        params = self.initial_parameters()
        lr = settings.learning_rate
        names = ["rotation", "translation", "identity", "expression"]
        if settings.use_photometric:
            names += ["albedo", "sh"]
        groups = [{"params": [params[name] for name in names], "lr": lr}]
        optimiser_class = torch.optim.Adam if settings.optimizer == "adam" else torch.optim.SGD
        optimiser = optimiser_class(groups)
        n_local = round(settings.iterations * settings.local_fraction) if settings.use_local else 0
        self._run(params, settings, optimiser, settings.iterations - n_local, with_local=False)
        if n_local:
            optimiser.add_param_group({"params": [params["local_other"]], "lr": lr})
            eye_lr = lr * settings.eye_lr_scale
            optimiser.add_param_group({"params": [params["local_eyes"]], "lr": eye_lr})
            self._run(params, settings, optimiser, n_local, with_local=True)
        return params

    def _run(
        self,
        params: dict[str, Tensor],
        settings: FitSettings,
        optimiser: torch.optim.Optimizer,
        iterations: int,
        with_local: bool,
    ) -> None:
        """``iterations`` optimiser steps of one stage."""
        for _ in range(iterations):
            optimiser.zero_grad(set_to_none=True)
            _, _, terms = self.evaluate(params, settings, with_local)
            sum(terms.values()).backward()
            optimiser.step()
            with torch.no_grad():
                params["expression"].clamp_(0.0, 1.0)
