"""Stage 1: fit the global + local face model to one photo (after Diverse3DFace, Alg. 1).

Pipeline of :func:`fit_face`:

1. Landmarks: mediapipe's 478 points of the chosen face (largest by default). A landmark is
   *visible* when it lies inside the photo and not on an occluded pixel; only visible
   landmarks are ever used, for the crop, the pose and the landmark term.
2. Crop (:mod:`d3dface.perception.face_crop`): a square around the visible landmarks,
   resampled to ``crop_size`` pixels (and to half that for the coarse level); crop pixels that
   touch occluded photo pixels, or lie farther than ``hull_margin`` from the visible landmarks'
   convex hull, are unusable for the photometric term.
3. Camera: a pinhole with a *fixed* field of view (``fov_deg`` across the photo's longer side,
   principal point at the photo centre). A single photo barely constrains the focal length (a
   face is ~10 cm deep at ~1 m), so it is not estimated; the head's distance absorbs the scale.
4. Rigid stage: the mean face's landmarks are placed by a PnP solve on the visible landmarks
   (:func:`d3dface.pose_init.solve_pose`, face-oval points left out: they sit on the silhouette).
5. Non-rigid stage: Adam on pose, identity, expression (kept in [0, 1]), region albedo and SH
   lighting, minimising ``w_lmk L_landmarks + w_photo L_photometric + L_reg``; then the same
   with the local coefficients added (their prior and ``w_smooth L_smooth`` join ``L_reg``),
   the two eye regions' local coefficients at half the learning rate (paper: 0.5x for eye
   components). The first ``coarse_fraction`` of the iterations render at half resolution
   (coarse to fine); all learning rates fall along a cosine. Landmarks beside an occluder
   weigh less (``occluder_margin``) and each landmark's pull is capped by a Cauchy loss
   (``landmark_robust_px``). The objective is evaluated on the sub-mesh it needs (skin and
   landmark triangles, under half the vertices); the full mesh is made once at the end.
6. Per-vertex visibility classes (:mod:`d3dface.visibility`) and the landmark error.

Albedo: the ICT model has no albedo model. The face's albedo is one RGB colour per face region,
blended by the model's soft region weights (``region_albedo``), under 2nd-order SH lighting
evaluated per vertex and interpolated across triangles; both are estimated with the shape. A
few colours cannot copy the photo's texture, so the photometric term informs the shape through
shading. Only facial skin triangles (:func:`facial_skin_faces`: no eyeballs, scalp, ears or
neck) are drawn for it, and each pixel's error is truncated so that hair, beards or an
occluder's unmasked edge cannot drag the head around.

Defaults and the measurements that chose them (synthetic renders of the global model, seeds
60000-60015, held apart from the benchmark's 50000+; every second face occluded; error = RMS
distance over truly visible facial vertices after a similarity alignment, median / mean over
the faces; seconds of one fit on one thread of a 2-core machine shared with other jobs, load
average 1-4, so compare seconds within one item only). Earlier measurements (200 iterations,
the paper-like single-resolution fit; 4-8 faces):

- Adam instead of the paper's SGD: on 4 clean faces at 200 iterations, Adam 1.79 mm, SGD at
  lr 5e-3 2.98 mm (2.66 mm after 600 iterations, 23 s), SGD at lr 5e-2 2.55 mm and unstable.
  Parameters are rescaled so that one learning rate serves every group (rotation in 0.1 rad,
  translation in 1 cm across and 5 cm in depth, coefficients in their prior's units).
- Photometric truncation 0.1: no change on renders; without it, a real photo with a drawn face
  mask was fitted in a wrongly turned pose (hair pixels dragged the head).
- Priors: identity 1e-2 (1e-3 let one occluded face diverge to 8.7 mm in 300 iterations),
  expression 0.1 (median 1.90 -> 1.77 mm; 0.3 costs 0.1 mm on occluded faces), local 0.1
  (at 1e-3 global+local was 0.5 mm worse than global). Smoothness 1000: 0.00-0.04 mm better
  than 1e-3; the local displacements are smooth by construction, so the term rarely bites.
- Working crop 256 px: 192 px was 0.4 mm worse for 30% less time.

The current defaults, from the earlier ones (1.790 / 2.462 mm global, 1.787 / 2.461 mm
global+local on 8 faces, 7.3 s; one occluded face at 7.8 mm, its mean-face error 5.6 mm):

- Sub-mesh objective and per-vertex shading: an iteration at 256 px took 50 ms, on the
  sub-mesh 32 ms, with shading per vertex instead of per pixel 21 ms (0.03 mm worse on 8
  faces: 1.78 -> 1.81). Coarse to fine: an iteration at 128 px takes 10 ms; with half of 200
  iterations there 1.81 mm and 25% less time, with 75% 1.80 mm.
- Landmarks beside occluders: mediapipe shifts visible landmarks near an occluder by 10-28 px
  (512 px render) against 4-7 px far from it. Weighting them by ``(d / margin)^2``: occluded
  faces 1.85 mm -> 1.71 / 1.65 / 1.66 at margin 0.05 / 0.1 / 0.2 of the crop side.
  Excluding them from the PnP pose as well changed nothing (1.406 -> 1.402 mm occluded).
- Robust landmarks: with exact landmarks (the true projections) the fit reaches 1.44 mm, so
  landmark errors dominate. A Cauchy loss of scale 3 px: 1.61 / 1.73 mm (2 px 1.62 / 1.58,
  12 px 1.63 / 2.27; plain squares left the 7.8 mm face at 7.1 mm, 3 px brought it to 4.1).
- Photometric weight (landmark weight 1, 16 faces): 64 1.61 / 1.73, 128 1.48 / 1.50, 256
  1.47 / 1.50, 512 1.50 / 1.54 mm; 128 keeps more weight on landmarks for real photos.
- Schedule (16 faces): 120 / 150 / 200 / 300 iterations at a constant learning rate:
  1.55 / 1.52 / 1.48 / 1.43 mm median (error still falling at 400). Cosine decay to 0.1 of
  the learning rate and Adam's beta2 0.99 (instead of 0.999): 1.41 / 1.43 mm at 300;
  learning rate 0.03 1.44 / 1.48, 0.1 worse. Share of the 300 iterations at half
  resolution 0.75 / 0.85 / 0.9: 1.406 / 1.406 / 1.409 mm median, 4.8 / 4.0 / 3.8 s (360 at
  0.9: 1.398 mm, 4.4 s; 240 at 0.75: 1.45 mm, 3.8 s).
- Photometric pixels near the landmark hull: on a photo with a drawn face mask the fit
  opened the hidden jaw (jawOpen 0.40, mouth visibly open in the overlay): the neck below
  the mask is skin-coloured, and a mean error over the rendered pixels rewards covering it.
  The exact hull closes it (jawOpen 0) but costs 0.03 / 0.10 mm on renders; margin 0.05 is
  unstable (1.46 / 1.71); margin 0.1 of the crop side is neutral (1.406 / 1.439 against
  1.409 / 1.429) and leaves jawOpen at 0.17 (0 on the Biden photo).
- Local stage (global-model faces cannot gain from it): global only / local from 50% / from
  25%: 1.400 / 1.409 / 1.400 mm. On faces with local detail (local coefficients drawn from
  N(0, 0.5^2), 16 faces): global 2.74 / 2.75, global+local 2.72 / 2.72 mm (local prior 0.03:
  2.71, 0.3: 2.72).

Longer fits: the error keeps falling well past the default 300 iterations. On 8 clean renders
(seeds 60000-60007), 300 / 500 / 600 / 1000 / 1500 / 2000 iterations give a mean error of
1.40 / 1.30 / 1.25 / 1.11 / 1.01 / 0.93 mm (time grows in proportion: 2000 take ~30 s on one
thread). The default stays at 300 for the photo-to-meshes time; the app's ``quality`` preset
fits with 2000 (:data:`d3dface.app_logic.PRESETS`).

Fitting has no random step: the same inputs give the same result.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from functools import partial
from numbers import Integral
from typing import Literal

import cv2
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
from d3dface.render import (
    Camera,
    interpolate,
    project,
    rasterize,
    rotation_matrix,
    sh_shading,
    transform_points,
    vertex_normals,
)
from d3dface.visibility import VISIBLE, classify_vertices

__all__ = [
    "DEFAULT_ITERATIONS",
    "FitResult",
    "FitSettings",
    "facial_skin_faces",
    "fit_face",
    "photo_camera",
    "visible_landmarks",
]

DEFAULT_ITERATIONS = 300
"""Non-rigid iterations; chosen from the accuracy / time measurements in the module docstring."""
MAX_ITERATIONS = 10000
"""Most non-rigid iterations a fit accepts (the app's quality preset uses 2000, about 30 s on
one CPU thread; 10000 take a few minutes), as the diversity stage's limit."""

_ROTATION_UNIT = 0.1  # radians per parameter unit
_TRANSLATION_UNIT = (0.01, 0.01, 0.05)  # metres per parameter unit (x, y, depth)
_SH_CONSTANT = 1.0 / 0.282095  # SH coefficient of a uniform light of intensity 1
_EYE_REGIONS = ("eye_left", "eye_right")
_FACE_AREA_MAX_REST = 0.5  # a vertex is facial when its "rest" region weight is below this
_ADAM_BETAS = (0.9, 0.99)  # a shorter second-moment memory than torch's 0.999
RUNAWAY_LANDMARK_SHARE = 0.2
"""A fit whose visible landmarks end farther than this share of the eye-corner distance from
the detected ones, on average, has been pulled off the face by the photometric term (a washed-out,
over-exposed face: 119 px on a face with 150 px between the eye corners, where a fit of the
landmarks alone is 7.5 px off); it is fitted again without that term and the nearer of the two
is kept (its ``timings`` then hold ``refit``). In an audit of 146 photo variants the landmark
errors of the good fits were at most 11% of that distance (median 4%)."""


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
        coarse_fraction: share of ``iterations`` run first at half the working resolution.
        final_lr_fraction: the learning rates fall along a cosine to this fraction of their
            start by the last iteration.
        landmark_robust_px: scale (pixels of a ``crop_size`` crop) of the Cauchy loss on each
            landmark's distance (``c^2 log(1 + d^2 / c^2)``): a landmark far off stops
            pulling; 0 gives plain squares.
        occluder_margin: a visible landmark nearer than this fraction of the crop side to an
            occluded pixel has its weight scaled by ``(distance / margin)^2``.
        hull_margin: the photometric term only uses pixels within this fraction of the crop
            side of the visible landmarks' convex hull (None: no such limit).
    """

    iterations: int = DEFAULT_ITERATIONS
    use_local: bool = True
    use_photometric: bool = True
    local_fraction: float = 0.5
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 0.05
    eye_lr_scale: float = 0.5
    landmark_weight: float = 1.0
    photometric_weight: float = 128.0
    photometric_truncation: float = 0.1
    regularisation_weight: float = 1e-2
    expression_regularisation_weight: float = 0.1
    local_regularisation_weight: float = 0.1
    smoothness_weight: float = 1000.0
    crop_size: int = DEFAULT_CROP_SIZE
    crop_margin: float = DEFAULT_CROP_MARGIN
    fov_deg: float = 20.0
    coarse_fraction: float = 0.85
    final_lr_fraction: float = 0.1
    landmark_robust_px: float = 3.0
    occluder_margin: float = 0.1
    hull_margin: float | None = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, Integral) or not 0 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(
                f"iterations must be a whole number from 0 to {MAX_ITERATIONS}, "
                f"got {self.iterations!r}"
            )
        object.__setattr__(self, "iterations", int(self.iterations))  # a numpy integer too
        if not 0.0 <= self.local_fraction <= 1.0:
            raise ValueError(f"local_fraction must be in [0, 1], got {self.local_fraction}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0.0 < self.fov_deg < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {self.fov_deg}")
        if not 0.0 <= self.coarse_fraction <= 1.0:
            raise ValueError(f"coarse_fraction must be in [0, 1], got {self.coarse_fraction}")


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
        colours: (V, 3) RGB in [0, 1] for mesh files: the albedo, with the scalp, ears and
            neck (the ``rest`` region, which the fit never draws, so its colour drifts to
            whatever borders the face: hair, background, an occluder) given the facial
            regions' mean colour.
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

    Its tensors are on the CPU, whichever device the fit ran on.
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
    colours: Tensor
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
        model: a face model with regions, local models and a landmark embedding; the fit
            runs on the device of its tensors (``model.to("cuda")`` fits on the GPU).
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
    visible = visible_landmarks(landmarks.points, mask, photo.shape[:2])
    if visible.sum() < MIN_POSE_POINTS:
        raise ValueError(
            f"only {visible.sum()} of the face's {len(visible)} landmarks are visible; at least "
            f"{MIN_POSE_POINTS} are needed (the occlusion mask hides almost the whole face); "
            "paint only what covers the face (white = hidden, black = visible)"
        )
    points = landmarks.points[visible]
    crop = crop_face(photo, points, mask, settings.crop_size, settings.crop_margin)
    camera = photo_camera(photo.shape[:2], settings.fov_deg)
    device = model.template.device
    levels = [_Level.of(crop, camera, points, settings.hull_margin, device)]
    if settings.coarse_fraction > 0.0:
        coarse = crop_face(photo, points, mask, settings.crop_size // 2, settings.crop_margin)
        levels.insert(0, _Level.of(coarse, camera, points, settings.hull_margin, device))
    reliability = _landmark_reliability(points, mask, settings.occluder_margin * crop.side)
    problem = _Problem(model, levels, visible, reliability)
    timings["rigid"] = time.perf_counter() - clock

    clock = time.perf_counter()
    params = problem.optimise(settings)
    errors = problem.landmark_errors(params, settings.use_local, camera, landmarks.points)
    timings["nonrigid"] = time.perf_counter() - clock
    eye_corners = float(np.linalg.norm(landmarks.points[33] - landmarks.points[263]))
    if settings.use_photometric and errors[visible].mean() > RUNAWAY_LANDMARK_SHARE * eye_corners:
        clock = time.perf_counter()
        plain = replace(settings, use_photometric=False)
        again = problem.optimise(plain)
        again_errors = problem.landmark_errors(again, settings.use_local, camera, landmarks.points)
        if again_errors[visible].mean() < errors[visible].mean():
            params, errors, settings = again, again_errors, plain
        timings["refit"] = time.perf_counter() - clock

    clock = time.perf_counter()
    with torch.no_grad():
        terms = problem.evaluate(params, settings, levels[-1], settings.use_local)
        vertices, vertices_cam = problem.full_mesh(params, settings.use_local)
        rotation, translation = problem.pose(params)
        albedo = region_albedo(params["albedo"], model.region_weights)
        colours = region_albedo(_facial_rest_colour(params["albedo"], model), model.region_weights)
    vertices, vertices_cam = vertices.cpu(), vertices_cam.cpu()
    visibility = classify_vertices(vertices_cam, model.faces.cpu(), camera, mask)
    timings["visibility"] = time.perf_counter() - clock
    timings["total"] = time.perf_counter() - start
    return FitResult(
        identity=params["identity"].detach()[0].cpu(),
        expression=params["expression"].detach()[0].cpu(),
        local=problem.local(params).detach()[0].cpu(),
        rotation=rotation.cpu(),
        translation=translation.cpu(),
        camera=camera,
        vertices=vertices,
        vertices_cam=vertices_cam,
        albedo=albedo.cpu(),
        colours=colours.clamp(0.0, 1.0).cpu(),
        sh_coeffs=params["sh"].detach()[0].cpu(),
        crop=crop,
        visibility=visibility,
        landmarks=landmarks,
        landmark_visible=visible,
        landmark_errors_px=np.where(visible, errors, np.nan),
        losses={name: float(value) for name, value in terms.items()},
        timings={name: round(seconds, 4) for name, seconds in timings.items()},
        settings=settings,
    )


def visible_landmarks(
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


def _landmark_reliability(points: np.ndarray, mask: np.ndarray | None, margin: float) -> np.ndarray:
    """(N,) weight factors in [0, 1] of visible landmarks (N, 2) photo pixels: ``(d /
    margin)^2`` for a landmark ``d`` < ``margin`` photo pixels from the nearest occluded pixel,
    else 1. Mediapipe infers a face's landmarks jointly, so an occluder also shifts the visible
    ones beside it (on renders: ~15-25 px within 20 px of it, ~5 px far from it, at 512 px)."""
    if mask is None or margin <= 0.0 or not mask.any():
        return np.ones(len(points))
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    height, width = mask.shape
    cols = np.clip(np.floor(points[:, 0]).astype(np.int64), 0, width - 1)
    rows = np.clip(np.floor(points[:, 1]).astype(np.int64), 0, height - 1)
    return np.minimum(distance[rows, cols] / margin, 1.0) ** 2


def _cosine_decay(step: int, steps: int, final: float) -> float:
    """Learning-rate factor at ``step`` of ``steps``: 1 at the start, along a cosine toward
    ``final`` at the end."""
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))


def _near_hull(points: np.ndarray, size: int, radius: int) -> np.ndarray:
    """(size, size) bool: the pixels within ``radius`` of the convex hull of points (N, 2)."""
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))
    inside = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(inside, hull, 1, lineType=cv2.LINE_8, shift=4)
    if radius > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        inside = cv2.dilate(inside, disc)
    return inside > 0


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


def _facial_rest_colour(region_colours: Tensor, model: FaceModel) -> Tensor:
    """Per-region colours (R, 3) with the ``rest`` region's replaced by the mean of the
    others, each weighted by its total vertex weight."""
    rest = model.region_index("rest")
    facial = [index for index in range(model.n_regions) if index != rest]
    weights = model.region_weights[facial].sum(dim=1, keepdim=True)
    colours = region_colours.detach().clone()
    colours[rest] = (colours[facial] * weights).sum(dim=0) / weights.sum()
    return colours


def facial_skin_faces(model: FaceModel) -> Tensor:
    """(F', 3) the face's skin triangles: no eyeball triangle, and none with a corner whose
    "rest" region weight (scalp, ears, neck) reaches 0.5."""
    rest = model.region_weights[model.region_index("rest")]
    facial = (rest < _FACE_AREA_MAX_REST) & (model.vertex_part == 0)
    return model.faces[facial[model.faces].all(dim=1)]


@dataclass(frozen=True, eq=False)
class _Level:
    """One working resolution: the crop camera, the crop image ``(S, S, 3)`` in [0, 1], its
    usable pixels ``(S, S)`` bool and the visible landmarks ``(N, 2)`` in its pixels."""

    camera: Camera
    image: Tensor
    usable: Tensor
    targets: Tensor

    @classmethod
    def of(
        cls,
        crop: FaceCrop,
        camera: Camera,
        visible_points: np.ndarray,
        hull_margin: float | None,
        device: torch.device | str = "cpu",
    ) -> _Level:
        """The level of a crop of the photo seen by ``camera`` (photo pixels), on ``device``.

        ``visible_points`` (N, 2) photo pixels; with a ``hull_margin`` (fraction of the crop
        side) the pixels farther than that from their convex hull are unusable.
        """
        targets = crop.to_crop(visible_points)
        usable = ~crop.unusable
        if hull_margin is not None:
            usable &= _near_hull(targets, crop.size, round(hull_margin * crop.size))
        return cls(
            camera=_crop_camera(camera, crop),
            image=torch.from_numpy(crop.image).to(device),
            usable=torch.from_numpy(usable).to(device),
            targets=torch.from_numpy(targets).float().to(device),
        )


class _Problem:
    """The data of one fit (working levels, visible landmarks) and its objective.

    The optimisation only needs the vertices of the facial skin triangles and of the visible
    landmarks' triangles (``used``, under half of the model's), so it runs on that sub-mesh:
    one matrix product of all coefficients with a pre-sliced basis gives its vertices
    (:meth:`sub_mesh`), and the full mesh is computed once, at the end (:meth:`full_mesh`).
    """

    def __init__(
        self,
        model: FaceModel,
        levels: list[_Level],
        visible: np.ndarray,
        reliability: np.ndarray,
    ) -> None:
        """``levels``: coarse to fine, the last one sets the pose; ``visible`` (478,) bool, the
        landmarks used; ``reliability`` (N_visible,) their weight factors in [0, 1]."""
        self.model = model
        self.levels = levels
        self.device = device = model.template.device
        weights = landmark_weights()[visible] * reliability
        self.weights = torch.from_numpy(weights).float().to(device)
        eye_regions = [model.region_index(name) for name in _EYE_REGIONS]
        others = [i for i in range(model.n_regions) if i not in eye_regions]
        self.n_eye, self.n_other = len(eye_regions), len(others)
        self.region_order = torch.argsort(torch.tensor(eye_regions + others, device=device))
        local_basis = _local_basis(model)
        self.smoothness = smoothness_matrix(
            uniform_laplacian(model.faces.cpu().numpy(), model.n_vertices), local_basis.cpu()
        ).to(device)
        # the sub-mesh: facial skin triangles and the visible landmarks' triangles
        visible_index = np.flatnonzero(visible)
        skin = facial_skin_faces(model)
        landmark_corners = model.faces[model.landmark_faces[torch.from_numpy(visible_index)]]
        self.used = torch.unique(torch.cat([skin.reshape(-1), landmark_corners.reshape(-1)]))
        renumber = torch.full((model.n_vertices,), -1, dtype=torch.long, device=device)
        renumber[self.used] = torch.arange(len(self.used), device=device)
        self.photo_faces = renumber[skin]
        self.landmark_corners = renumber[landmark_corners]
        self.landmark_bary = model.landmark_bary[torch.from_numpy(visible_index)]
        self.template = model.template[self.used][None]
        bases = (model.identity_basis, model.expression_basis, local_basis)
        self.basis = torch.cat([basis[:, self.used].reshape(len(basis), -1) for basis in bases])
        self.region_weights = model.region_weights[:, self.used]

        fine = levels[-1]
        with torch.no_grad():
            mean_landmarks = self.landmarks(self.template)[0].double().cpu().numpy()
        # the face oval lies on the silhouette, where the mean face's points do not
        for_pose = ~np.isin(visible_index, landmark_groups()["face_oval"])
        rotation, translation = solve_pose(
            mean_landmarks[for_pose],
            fine.targets.double().cpu().numpy()[for_pose],
            float(fine.camera.fx),
            (float(fine.camera.cx), float(fine.camera.cy)),
        )
        self.rotation0 = torch.from_numpy(rotation).float().to(device)
        self.translation0 = torch.from_numpy(translation).float().to(device)

    # ------------------------------------------------------------------ parameters
    def initial_parameters(self) -> dict[str, Tensor]:
        """Leaf tensors of the rescaled parameters at the rigid solution and the mean face."""
        model = self.model
        zeros = partial(torch.zeros, device=self.device)
        params = {
            "rotation": zeros(1, 3),
            "translation": zeros(1, 3),
            "identity": zeros(1, model.n_identity),
            "expression": zeros(1, model.n_expression),
            "local_eyes": zeros(1, self.n_eye, model.n_local),
            "local_other": zeros(1, self.n_other, model.n_local),
            "albedo": self._initial_albedo().expand(model.n_regions, 3).clone(),
            "sh": zeros(1, 9, 3),
        }
        params["sh"][0, 0] = _SH_CONSTANT
        for tensor in params.values():
            tensor.requires_grad_(True)
        return params

    def _initial_albedo(self) -> Tensor:
        """(3,) mean colour of the usable fine-level pixels that the posed mean face covers."""
        fine = self.levels[-1]
        with torch.no_grad():
            vertices_cam = transform_points(
                self.template, self.rotation0[None], self.translation0[None]
            )
            screen = project(vertices_cam, fine.camera)
            fragments = rasterize(screen, self.photo_faces, fine.camera.image_size)
            valid = fragments.mask[0] & fine.usable
            if not bool(valid.any()):
                return torch.full((3,), 0.5, device=self.device)
            return fine.image[valid].mean(dim=0)

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

    def sub_mesh(self, params: dict[str, Tensor], local: Tensor | None) -> Tensor:
        """Model-space vertices (1, U, 3) of the sub-mesh (``used``): identity, expression and,
        when given, the local coefficients (1, R, L), in one product with the sliced basis."""
        coefficients = [params["identity"], params["expression"]]
        if local is not None:
            coefficients.append(local.reshape(1, -1))
        joined = torch.cat(coefficients, dim=1)
        offsets = joined @ self.basis[: joined.shape[1]]
        return self.template + offsets.view(1, -1, 3)

    def landmarks(self, vertices: Tensor) -> Tensor:
        """Sub-mesh vertices (1, U, 3) -> the visible landmarks' surface points (1, N, 3)."""
        corners = vertices[:, self.landmark_corners]  # (1, N, 3, 3)
        return torch.einsum("bnkc,nk->bnc", corners, self.landmark_bary)

    # ------------------------------------------------------------------ objective
    def evaluate(
        self, params: dict[str, Tensor], settings: FitSettings, level: _Level, with_local: bool
    ) -> dict[str, Tensor]:
        """The weighted loss terms at one level; the local terms only ``with_local``."""
        local = self.local(params) if with_local else None
        vertices_cam = self.posed(self.sub_mesh(params, local), params)
        screen = project(self.landmarks(vertices_cam), level.camera)[0, :, :2]
        terms = {
            "landmarks": settings.landmark_weight
            * landmark_loss(
                screen,
                level.targets,
                self.weights,
                level.camera.image_size[0] / 2,
                settings.landmark_robust_px * level.camera.image_size[0] / settings.crop_size,
            )
        }
        if settings.use_photometric:
            terms["photometric"] = settings.photometric_weight * self._photometric(
                vertices_cam, params, level, settings.photometric_truncation
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
        return terms

    def _photometric(
        self, vertices_cam: Tensor, params: dict[str, Tensor], level: _Level, truncation: float
    ) -> Tensor:
        """Truncated photometric error (unweighted) of the skin triangles at ``level``.

        ``vertices_cam`` (1, U, 3). Shading is per vertex (albedo times SH irradiance at the
        vertex normal), interpolated across each triangle.
        """
        albedo = region_albedo(params["albedo"], self.region_weights)[None]
        normals = vertex_normals(vertices_cam, self.photo_faces)
        colours = albedo * sh_shading(normals, params["sh"])
        screen = project(vertices_cam, level.camera)
        fragments = rasterize(screen, self.photo_faces, level.camera.image_size)
        rendered = interpolate(colours, self.photo_faces, fragments)
        valid = fragments.mask[0] & level.usable
        return photometric_loss(rendered[0], level.image, valid, truncation)

    def full_mesh(self, params: dict[str, Tensor], with_local: bool) -> tuple[Tensor, Tensor]:
        """The whole model's vertices (V, 3) and camera-space vertices (V, 3)."""
        local = self.local(params) if with_local else None
        vertices = self.model(params["identity"], params["expression"], local)
        return vertices[0], self.posed(vertices, params)[0]

    # ------------------------------------------------------------------ optimisation
    def landmark_errors(
        self, params: dict[str, Tensor], with_local: bool, camera: Camera, detected: np.ndarray
    ) -> np.ndarray:
        """``(478,)`` distances in photo pixels between the fit's landmarks seen by the photo's
        ``camera`` and the ``detected`` ones ``(478, 2)``."""
        with torch.no_grad():
            _, vertices_cam = self.full_mesh(params, with_local)
            projected = project(self.model.landmarks(vertices_cam[None]), camera)[0, :, :2]
        return np.linalg.norm(projected.cpu().numpy() - detected, axis=1)

    def optimise(self, settings: FitSettings) -> dict[str, Tensor]:
        """Run the global stage, then (with ``use_local``) the global+local stage.

        One optimiser runs through both stages; the local coefficients join it as new
        parameter groups, so the global parameters keep their optimiser state. Every group's
        learning rate follows :func:`_cosine_decay`; the first ``coarse_fraction`` of the
        iterations run at the coarse level (when there is one).
        """
        params = self.initial_parameters()
        lr = settings.learning_rate
        names = ["rotation", "translation", "identity", "expression"]
        if settings.use_photometric:
            names += ["albedo", "sh"]
        groups = [{"params": [params[name] for name in names], "lr": lr, "initial_lr": lr}]
        if settings.optimizer == "adam":
            optimiser = torch.optim.Adam(groups, betas=_ADAM_BETAS)
        else:
            optimiser = torch.optim.SGD(groups)
        n_local = round(settings.iterations * settings.local_fraction) if settings.use_local else 0
        n_global = settings.iterations - n_local
        n_coarse = round(settings.iterations * settings.coarse_fraction)
        for step in range(settings.iterations):
            if step == n_global:
                eye_lr = lr * settings.eye_lr_scale
                for name, start in (("local_other", lr), ("local_eyes", eye_lr)):
                    optimiser.add_param_group(
                        {"params": [params[name]], "lr": start, "initial_lr": start}
                    )
            decay = _cosine_decay(step, settings.iterations, settings.final_lr_fraction)
            for group in optimiser.param_groups:
                group["lr"] = group["initial_lr"] * decay
            level = self.levels[0] if step < n_coarse else self.levels[-1]
            optimiser.zero_grad(set_to_none=True)
            terms = self.evaluate(params, settings, level, with_local=step >= n_global)
            sum(terms.values()).backward()
            optimiser.step()
            with torch.no_grad():
                params["expression"].clamp_(0.0, 1.0)
        return params
