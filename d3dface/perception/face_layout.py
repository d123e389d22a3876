"""Where the face lies in a working crop of its photo, from a quick fit of the face model.

A landmark-only global fit (:func:`d3dface.fitting.fit_face` without the photometric term,
about 0.3 s on a CPU) poses the model in the photo; rasterising its facial surface (skin and
eyeballs, no scalp, ears or neck) in the fit's square crop gives the face's *footprint*, the
dominant model region and the surface normal of every covered pixel. The eyes, brows and lips,
which never look like skin, are polygons of the detected landmarks (dilated, as the landmark
outlines hug them tightly). The model regularises the footprint: unlike MediaPipe's own mesh, it
cannot take an implausible shape where the landmarks are guessed under an occluder.

Crop pixels follow :mod:`d3dface.perception.face_crop`; :meth:`FaceLayout.to_photo` maps a crop
mask back to the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy import ndimage

from d3dface.facemodel.model import FaceModel
from d3dface.fitting import FitResult, FitSettings, fit_face
from d3dface.perception.face_crop import FaceCrop
from d3dface.perception.face_parts import LEFT_BROW, LEFT_EYE, LIPS_OUTER, RIGHT_BROW, RIGHT_EYE
from d3dface.perception.landmarks import FaceLandmarks
from d3dface.render import interpolate, project, rasterize, vertex_normals

__all__ = ["LAYOUT_FIT", "FaceLayout", "disk", "face_layout"]

LAYOUT_FIT = FitSettings(
    iterations=50, use_local=False, use_photometric=False, crop_size=256, crop_margin=1.8
)
"""The quick fit: 50 landmark-only global iterations (on the three test photos the mean
landmark error is within 0.1 px of 200 iterations', at 0.3-0.4 s instead of 0.9 s), in a
256 px crop with some context around the face (1.8 x the landmark box; 320 px gave the same
masks, slower)."""

_FACE_MAX_REST = 0.5  # a vertex is facial when its "rest" region weight is below this
_FEATURE_GROW = {"eye": 0.35, "brow": 0.3, "lips": 0.12}
"""How far each landmark outline is grown, as a fraction of its own height (eyes: lids and
lashes above the lid margin; brows: hairs outside the outline)."""


@dataclass(frozen=True, eq=False)
class FaceLayout:
    """The fitted face in the working crop (``S`` = crop side in pixels).

    Attributes:
        crop: the crop (image ``(S, S, 3)`` float32 RGB in ``[0, 1]`` and its transform).
        footprint: ``(S, S)`` bool, the fitted facial surface covers the pixel centre.
        regions: ``(S, S)`` int8, index into ``model.region_names`` of the pixel's dominant
            region, -1 off the footprint.
        normals: ``(S, S, 3)`` float32 camera-space unit normals, zero off the footprint.
        features: ``(S, S)`` bool, the eyes, brows and lips (grown landmark outlines).
        fit: the quick fit that placed the face.
    """

    crop: FaceCrop
    footprint: np.ndarray
    regions: np.ndarray
    normals: np.ndarray
    features: np.ndarray
    fit: FitResult

    @property
    def size(self) -> float:
        """The face's size in crop pixels: the square root of its footprint's area."""
        return float(np.sqrt(self.footprint.sum()))

    def grown(self, fraction: float, drop: float = 0.0) -> np.ndarray:
        """``(S, S)`` bool footprint grown (``fraction`` > 0) or shrunk (< 0) by
        ``|fraction| * size`` pixels (at least one), and also extended ``drop * size`` pixels
        down the crop (where a jaw guessed under an occluder often falls short)."""
        footprint = self.footprint.astype(np.uint8)
        kernel = disk(abs(fraction) * self.size)
        changed = cv2.dilate(footprint, kernel) if fraction > 0 else cv2.erode(footprint, kernel)
        if drop > 0:
            length = max(round(drop * self.size), 1)
            line = np.ones((length + 1, 1), np.uint8)  # anchored at its bottom: reaches down
            changed |= cv2.dilate(footprint, line, anchor=(0, length))
        return changed > 0

    def to_photo(
        self,
        mask: np.ndarray,
        guide: np.ndarray | None = None,
        radius: float = 2.0,
        eps: float = 3e-2,
    ) -> np.ndarray:
        """A crop mask ``(S, S)`` bool -> the photo's ``(H, W)`` bool.

        The mask is resampled bilinearly into the photo pixels under the crop; with a
        ``guide`` (the ``(H, W, 3)`` uint8 photo) it is then guided-filtered (He et al.,
        ``radius`` in crop pixels, ``eps`` for colours in [0, 1]) so that its edges follow the
        photo's. Thresholded at 0.5; photo pixels outside the crop are False.
        """
        height, width = self.crop.photo_size
        scale = self.crop.scale
        x0, y0 = self.crop.origin
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = min(x0 + self.crop.side, width), min(y0 + self.crop.side, height)
        result = np.zeros((height, width), bool)
        if right <= left or bottom <= top:
            return result
        # window pixel index -> crop pixel index (cv2 centres at integers, ours at i + 0.5)
        to_crop = np.array(
            [
                [scale, 0.0, (left + 0.5 - x0) * scale - 0.5],
                [0.0, scale, (top + 0.5 - y0) * scale - 0.5],
            ]
        )
        soft = cv2.warpAffine(
            mask.astype(np.float32),
            to_crop,
            (right - left, bottom - top),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        if guide is not None:
            window = guide[top:bottom, left:right].astype(np.float32) / 255.0
            soft = cv2.ximgproc.guidedFilter(window, soft, max(round(radius / scale), 1), eps)
        result[top:bottom, left:right] = soft >= 0.5
        return result


def face_layout(
    photo: np.ndarray,
    model: FaceModel,
    landmarks: FaceLandmarks,
    occlusion_mask: np.ndarray | None = None,
    settings: FitSettings = LAYOUT_FIT,
) -> FaceLayout:
    """Fit the model to the landmarks (quickly) and lay the face out in the fit's crop.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB.
        model: a face model with regions and a landmark embedding.
        landmarks: the face's detected landmarks, photo pixels.
        occlusion_mask: ``(H, W)`` bool, landmarks on True pixels are left out of the fit.
        settings: the fit's settings (default :data:`LAYOUT_FIT`).

    Returns:
        The :class:`FaceLayout`.
    """
    fit = fit_face(photo, model, occlusion_mask, landmarks=landmarks, settings=settings)
    size = fit.crop.size
    camera = fit.crop_camera
    rest = model.region_weights[model.region_index("rest")]
    facial = rest < _FACE_MAX_REST
    faces = model.faces[facial[model.faces].all(dim=1)]
    with torch.no_grad():
        points = fit.vertices_cam[None]
        screen = project(points, camera)
        fragments = rasterize(screen, faces, (size, size))
        attributes = torch.cat(
            [vertex_normals(points, model.faces), model.region_weights.T[None]], dim=-1
        )
        pixels = interpolate(attributes, faces, fragments)[0]
    # the open mouth and the eye corners are holes in the surface, yet part of the face; the
    # crop's grey padding beyond the photo's border is not (in a tight close-up it was a third
    # of the footprint, and the segmentation marked the visible eyes hidden)
    footprint = ndimage.binary_fill_holes(fragments.mask[0].numpy()) & ~fit.crop.outside_photo
    normals = torch.nn.functional.normalize(pixels[..., :3], dim=-1).numpy()
    normals[~footprint] = 0.0
    regions = pixels[..., 3:].argmax(dim=-1).numpy().astype(np.int8)
    covered = fragments.mask[0].numpy()
    # filled holes take the region of the nearest covered pixel
    nearest = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
    regions = regions[nearest[0], nearest[1]]
    regions[~footprint] = -1
    features = _feature_mask(fit.crop.to_crop(landmarks.points), size)
    return FaceLayout(
        crop=fit.crop,
        footprint=footprint,
        regions=regions,
        normals=normals.astype(np.float32),
        features=features,
        fit=fit,
    )


def disk(radius: float) -> np.ndarray:
    """Elliptic structuring element (uint8) of a radius in pixels, rounded, at least 1."""
    r = max(round(radius), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _feature_mask(points: np.ndarray, size: int) -> np.ndarray:
    """``(S, S)`` bool: eyes, brows and lips, each outline grown by :data:`_FEATURE_GROW`.

    ``points`` (478, 2) landmarks in crop pixels.
    """
    mask = np.zeros((size, size), np.uint8)
    outlines = {
        "eye": (RIGHT_EYE, LEFT_EYE),
        "brow": (RIGHT_BROW, LEFT_BROW),
        "lips": (LIPS_OUTER,),
    }
    for kind, parts in outlines.items():
        for part in parts:
            polygon = points[list(part)]
            height = float(np.ptp(polygon[:, 1]))
            part_mask = np.zeros_like(mask)
            cv2.fillPoly(part_mask, [np.round(polygon - 0.5).astype(np.int32)], 1)
            mask |= cv2.dilate(part_mask, disk(_FEATURE_GROW[kind] * height))
    return mask.astype(bool)
