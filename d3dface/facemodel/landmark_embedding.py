"""Where each of mediapipe's 478 face-mesh landmarks lies on the face model's surface.

The embedding is computed, not copied: the model is rendered under random identities,
expressions, poses and lighting; mediapipe detects its landmarks on each render; each detection
is unprojected through the z-buffer to a (triangle, barycentric) surface point, and each
landmark keeps the observed surface point that best agrees with its detections in all renders.
Held-out renders (other seeds) measure the reprojection error in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from d3dface.facemodel.model import FaceModel
from d3dface.facemodel.sampling import sample_global_coefficients
from d3dface.perception.landmarks import NUM_LANDMARKS, LandmarkDetector
from d3dface.render import Camera, project, render, rotation_matrix

RENDER_SIZE = 512
FOCAL_PX = 1450.0  # ~20 degree field of view at 512 px
CAMERA_DISTANCE_M = 0.8
IDENTITY_SCALE = 0.8
"""Standard deviation of the rendered faces' identity coefficients (:func:`render_view`)."""
EXPRESSION_PROBABILITY, EXPRESSION_MAX = 0.06, 0.7
"""Each expression weight of a rendered face is active with this probability, then uniform in
[0, EXPRESSION_MAX]."""


@dataclass(frozen=True)
class SyntheticView:
    """One render of the model: the image and what is needed to unproject into it."""

    image: np.ndarray  # (H, W, 3) uint8
    vertices: Tensor  # (V, 3) model-space vertices of this face
    screen: Tensor  # (V, 3) u, v pixels and depth
    face_index: Tensor  # (H, W) long, -1 background


SKIN, LIP, BROW, SCLERA, IRIS, PUPIL = range(6)
_PATTERN_COLOURS = {
    LIP: (0.62, 0.30, 0.30),
    BROW: (0.16, 0.11, 0.08),
    SCLERA: (0.92, 0.92, 0.90),
    IRIS: (0.30, 0.20, 0.12),
    PUPIL: (0.04, 0.04, 0.04),
}


MEDIAPIPE_68 = (
    # jaw 0-16 (mediapipe's face oval: on the silhouette, not the Multi-PIE contour)
    *(127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356),
    *(70, 63, 105, 66, 107, 336, 296, 334, 293, 300),  # brows 17-26
    *(168, 6, 197, 4, 98, 97, 2, 326, 327),  # nose 27-35
    *(33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380),  # eyes 36-47
    *(61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181),  # outer lips 48-59
    *(78, 82, 13, 312, 308, 317, 14, 87),  # inner lips 60-67
)
"""The mediapipe landmark nearest each Multi-PIE 68-point landmark. On the shipped model's
template the brow, eye, nose and lip points lie within 0.4-6 mm of the ICT model's own 68
landmarks, so :func:`model_appearance_pattern` needs no ICT files."""


def model_appearance_pattern(model: FaceModel) -> Tensor:
    """(V,) appearance classes of a built model (one with a landmark embedding).

    :func:`appearance_pattern` with the 68 landmarks taken from the model's own embedding
    (:data:`MEDIAPIPE_68`) instead of the ICT files that the build reads; renders for
    benchmarks and tests use it.
    """
    with torch.no_grad():
        landmarks = model.landmarks(model.template[None])[0].double().numpy()
    pattern = appearance_pattern(
        model.template.double().numpy(), landmarks[list(MEDIAPIPE_68)], model.vertex_part.numpy()
    )
    return torch.from_numpy(pattern)


def appearance_pattern(
    template: np.ndarray, landmarks68: np.ndarray, vertex_part: np.ndarray
) -> np.ndarray:
    """Per-vertex appearance class for synthetic renders (skin, lip, brow, eye parts).

    Lips are the template vertices inside the outer-lip polygon (68-point landmarks 48-59,
    front view), brows the vertices within a few millimetres of the brow polylines (17-21,
    22-26); on each eyeball the angle from its forward axis gives pupil, iris and sclera.

    Args:
        template: (V, 3) metres. landmarks68: (68, 3) metres. vertex_part: (V,) 0 skin,
            1 left eyeball, 2 right eyeball.

    Returns:
        (V,) int pattern class.
    """
    from matplotlib.path import Path as PolygonPath

    pattern = np.full(len(template), SKIN)
    skin = vertex_part == 0
    front = template[:, 2] > landmarks68[36:48, 2].min() - 0.01
    lips = PolygonPath(landmarks68[48:60, :2]).contains_points(template[:, :2])
    pattern[skin & front & lips] = LIP
    for brow in (landmarks68[17:22], landmarks68[22:27]):
        distance = _distance_to_polyline(template[:, :2], brow[:, :2])
        pattern[skin & front & (distance < 0.004)] = BROW
    for eye_part in (1, 2):
        on_eye = vertex_part == eye_part
        direction = template[on_eye] - template[on_eye].mean(axis=0)
        forward = direction[:, 2] / np.linalg.norm(direction, axis=1)
        pattern[on_eye] = np.select([forward > 0.93, forward > 0.80], [PUPIL, IRIS], SCLERA)
    return pattern


def _distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance of (N, 2) points to a (K, 2) open polyline -> (N,)."""
    start, end = polyline[:-1], polyline[1:]
    segment = end - start
    along = np.einsum("nkc,kc->nk", points[:, None] - start[None], segment)
    along = np.clip(along / (segment**2).sum(axis=1), 0.0, 1.0)
    nearest = start[None] + along[..., None] * segment[None]
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(axis=1)


def face_colours(pattern: Tensor, skin: Tensor) -> Tensor:
    """Per-vertex albedo (V, 3) from pattern classes (V,) and a (3,) RGB skin tone in [0, 1]."""
    colours = skin.expand(len(pattern), 3).clone()
    for label, colour in _PATTERN_COLOURS.items():
        colours[pattern == label] = torch.tensor(colour)
    return colours


def rendered_face_coefficients(
    model: FaceModel, generator: torch.Generator, identity_scale: float = IDENTITY_SCALE
) -> tuple[Tensor, Tensor]:
    """The global coefficients of one rendered face (:func:`render_view`'s prior): identity
    (1, K_id) from N(0, identity_scale^2), expression weights (1, K_exp) each active with
    ``EXPRESSION_PROBABILITY``, then uniform in [0, ``EXPRESSION_MAX``]."""
    identity, expression = sample_global_coefficients(
        1,
        model.n_identity,
        model.n_expression,
        generator,
        expression_probability=EXPRESSION_PROBABILITY,
        identity_scale=identity_scale,
    )
    return identity, expression * EXPRESSION_MAX


def render_view(
    model: FaceModel,
    pattern: Tensor,
    generator: torch.Generator,
    identity_scale: float = IDENTITY_SCALE,
    local_scale: float = 0.0,
) -> SyntheticView:
    """Render one random face of the model (identity, expression, pose, light, skin tone).

    ``pattern`` (V,) holds the appearance classes from :func:`appearance_pattern`. With
    ``local_scale`` > 0 the face also gets regional detail: local coefficients drawn from
    N(0, local_scale^2) (the local models' prior, scaled), drawn after the global ones, so
    ``local_scale`` = 0 leaves the random stream, and the render, as they were.
    """
    identity, expression = rendered_face_coefficients(model, generator, identity_scale)
    local = None
    if local_scale > 0.0:
        shape = (1, model.n_regions, model.n_local)
        local = torch.randn(shape, generator=generator) * local_scale
    vertices = model(identity=identity, expression=expression, local=local)[0]
    angles = (torch.rand(3, generator=generator) * 2 - 1) * torch.tensor([0.20, 0.45, 0.12])
    face = model.region_weights[model.region_index("rest")] < 0.5
    centre = vertices[face].mean(dim=0)
    R = rotation_matrix(angles[None])
    t = torch.tensor([[0.0, 0.0, -CAMERA_DISTANCE_M]])
    points_cam = (vertices - centre)[None] @ R.transpose(1, 2) + t[:, None]
    camera = Camera(FOCAL_PX, FOCAL_PX, RENDER_SIZE / 2, RENDER_SIZE / 2, (RENDER_SIZE,) * 2)
    tone = 0.35 + 0.55 * torch.rand(1, generator=generator)
    skin = torch.tensor([0.95, 0.75, 0.62]) * tone + 0.05
    albedo = face_colours(pattern, skin)[None]
    light = torch.nn.functional.normalize(
        torch.tensor([0.0, 0.2, 1.0]) + 0.5 * (torch.rand(3, generator=generator) - 0.5), dim=0
    )
    background = float(0.15 + 0.6 * torch.rand(1, generator=generator))
    with torch.no_grad():
        image, fragments = render(
            points_cam,
            model.faces,
            camera,
            albedo=albedo,
            light_dir=light[None],
            background=background,
        )
        screen = project(points_cam, camera)[0]
    pixels = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return SyntheticView(pixels, vertices, screen, fragments.face_index[0])


def unproject_landmarks(
    view: SyntheticView, points_px: np.ndarray, faces: Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Surface points under detected landmarks.

    Args:
        view: the render the landmarks were detected on.
        points_px: (N, 2) landmark pixel positions (x right, y down).
        faces: (F, 3) model triangles.

    Returns:
        face_ids (N,) long (-1 where the landmark fell on the background) and bary (N, 3):
        barycentrics of the landmark within that triangle's screen projection
        (perspective-correct), so ``bary @ vertices[faces[face_id]]`` is the surface point.
    """
    height, width = view.face_index.shape
    cols = np.clip(np.floor(points_px[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.floor(points_px[:, 1]).astype(int), 0, height - 1)
    face_ids = view.face_index[rows, cols].numpy()
    bary = np.zeros((len(points_px), 3))
    hit = face_ids >= 0
    corners = view.screen[faces[face_ids[hit]]].double().numpy()  # (H, 3, 3)
    uv, depth = corners[..., :2], corners[..., 2]
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    rel = points_px[hit] - uv[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    b1 = (rel[:, 0] * e2[:, 1] - rel[:, 1] * e2[:, 0]) / det
    b2 = (e1[:, 0] * rel[:, 1] - e1[:, 1] * rel[:, 0]) / det
    screen_bary = np.stack([1 - b1 - b2, b1, b2], axis=1)
    # a landmark inside a pixel of the triangle may sit just outside it: clamp onto the triangle
    perspective = np.clip(screen_bary, 0.0, None) / depth
    bary[hit] = perspective / perspective.sum(axis=1, keepdims=True)
    return np.where(hit, face_ids, -1), bary


def project_surface_points(screen: Tensor, faces: Tensor, face_ids: Tensor, bary: Tensor) -> Tensor:
    """Pixel positions of surface points given as (triangle, barycentric).

    A 3D point ``sum_k b_k P_k`` projects to the corners' pixels mixed with weights
    ``b_k * depth_k`` (normalised), so no camera is needed beyond the projected corners.

    Args:
        screen: (..., V, 3) projected vertices (u, v, depth).
        faces: (F, 3) triangles. face_ids: (C,) long. bary: (C, 3).

    Returns:
        (..., C, 2) pixel positions.
    """
    corners = screen[..., faces[face_ids], :]  # (..., C, 3, 3)
    weights = bary * corners[..., 2]
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return (weights[..., None] * corners[..., :2]).sum(dim=-2)


@dataclass(frozen=True)
class LandmarkEmbedding:
    """``faces`` (478,) triangle ids and ``bary`` (478, 3); ``observations`` (478,) counts."""

    faces: np.ndarray
    bary: np.ndarray
    observations: np.ndarray
    renders_used: int


def compute_landmark_embedding(
    model: FaceModel,
    pattern: Tensor,
    detector: LandmarkDetector,
    n_renders: int,
    seed: int,
    progress: bool = False,
) -> LandmarkEmbedding:
    """Render, detect and unproject; per landmark keep the best-agreeing observation.

    Every detection that lands on the surface is a candidate (triangle, barycentric). The
    embedding of a landmark is its candidate whose projections into *all* renders lie
    closest to that landmark's detections (least summed pixel error): a medoid in image space,
    robust to outlying detections and always exactly on the surface.
    """
    generator = torch.Generator().manual_seed(seed)
    screens, detected = [], []
    candidate_faces: list[list[int]] = [[] for _ in range(NUM_LANDMARKS)]
    candidate_bary: list[list[np.ndarray]] = [[] for _ in range(NUM_LANDMARKS)]
    for _ in _progress(range(n_renders), progress, "landmark renders"):
        view = render_view(model, pattern, generator)
        detections = detector.detect(view.image)
        if not detections:
            continue
        screens.append(view.screen)
        detected.append(torch.from_numpy(detections[0].points).double())
        face_ids, bary = unproject_landmarks(view, detections[0].points, model.faces)
        for index in np.flatnonzero(face_ids >= 0):
            candidate_faces[index].append(int(face_ids[index]))
            candidate_bary[index].append(bary[index])
    if not screens:
        raise RuntimeError("mediapipe found no face on any render of the model")
    all_screens = torch.stack(screens).double()  # (N, V, 3)
    all_detected = torch.stack(detected)  # (N, 478, 2)
    embedded_faces = np.zeros(NUM_LANDMARKS, dtype=np.int64)
    embedded_bary = np.zeros((NUM_LANDMARKS, 3))
    counts = np.array([len(c) for c in candidate_faces])
    for index in range(NUM_LANDMARKS):
        if counts[index] == 0:
            raise RuntimeError(f"landmark {index} was never observed on the surface")
        face_ids = torch.tensor(candidate_faces[index])
        bary = torch.from_numpy(np.stack(candidate_bary[index]))
        projected = project_surface_points(all_screens, model.faces, face_ids, bary)
        error = (projected - all_detected[:, index, None]).norm(dim=-1).sum(dim=0)  # (C,)
        best = int(error.argmin())
        embedded_faces[index] = candidate_faces[index][best]
        embedded_bary[index] = candidate_bary[index][best]
    return LandmarkEmbedding(embedded_faces, embedded_bary, counts, len(screens))


@dataclass(frozen=True)
class ReprojectionReport:
    """Pixel errors of the embedding on held-out renders (at ``RENDER_SIZE`` px)."""

    median_px: float
    mean_px: float
    p95_px: float
    median_px_inner: float  # excluding the face-oval contour landmarks
    renders: int


def reprojection_error(
    model: FaceModel,
    pattern: Tensor,
    detector: LandmarkDetector,
    n_renders: int,
    seed: int,
    oval: np.ndarray,
) -> ReprojectionReport:
    """Project the embedded landmarks into held-out renders; compare with mediapipe's."""
    generator = torch.Generator().manual_seed(seed)
    errors, inner_errors = [], []
    inner = np.setdiff1d(np.arange(NUM_LANDMARKS), oval)
    rendered = 0
    for _ in range(n_renders):
        view = render_view(model, pattern, generator)
        detections = detector.detect(view.image)
        if not detections:
            continue
        rendered += 1
        projected = project_surface_points(
            view.screen, model.faces, model.landmark_faces, model.landmark_bary
        ).numpy()
        error = np.linalg.norm(projected - detections[0].points, axis=1)
        errors.append(error)
        inner_errors.append(error[inner])
    if not errors:
        raise RuntimeError("mediapipe found no face on any held-out render")
    every = np.concatenate(errors)
    return ReprojectionReport(
        median_px=float(np.median(every)),
        mean_px=float(every.mean()),
        p95_px=float(np.percentile(every, 95)),
        median_px_inner=float(np.median(np.concatenate(inner_errors))),
        renders=rendered,
    )


def _progress(items: range, enabled: bool, label: str) -> range:
    """Wrap ``items`` in a tqdm bar when enabled."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label)
