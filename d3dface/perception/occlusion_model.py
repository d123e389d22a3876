"""Model-based occlusion segmentation: no learned weights, only the fitted face and the photo.

In the spirit of occlusion-aware 3DMM fitting (Egger et al. 2018) and FOCUS: a pixel of the
face is *visible* when a simple appearance model of this face's skin explains it, *occluded*
otherwise. All work happens in the :class:`~d3dface.perception.face_layout.FaceLayout` crop:

1. **Where**: the quick fit's footprint, grown by :attr:`ModelSegmentationSettings.grow` of the
   face's size and further down by ``drop`` (the landmarks under an occluder are guesses, so
   the footprint may fall short, most of all at the jaw).
   Eyes, brows and lips never look like skin: they are inpainted from their surroundings
   (so an eye under sunglasses takes the lens's colour, a visible one the skin's) and, after
   the segmentation, take the label of the nearest pixel around them (or are occluded when
   they look hidden, step 5).
2. **Which colour is skin** (RANSAC over the model's regions): each face region proposes its
   median chroma (Lab a*, b*) and a smooth lighting fitted to its own pixels; a proposal scores
   the mean over regions of the share of pixels it explains (capped at one half, since skin is
   everywhere and occluders are local), plus how well it explains the
   surroundings of the *visible* eyes, brows and lips while leaving those of hidden ones
   (visible features differ from their surroundings; an occluder is locally uniform). The
   best proposal wins. Without this second term a skin-coloured hand over half the face was
   taken for the skin and the face for the occluder.
3. **Skin model**: 2nd-order spherical-harmonics lighting on the fitted surface normals,
   fitted robustly (Tukey) to the winning pixels' luminance, gives the photometric residual
   ``r`` of every pixel; the skin is a robust (trimmed) Gaussian over ``(a*, b*, r)`` whose
   mean may shift a little per region (foreheads are paler, cheeks redder).
4. **Refinement**: GrabCut (colour models re-learnt from the data, graph-cut smoothing along
   image edges) on a shading-free image ``(a*, b*, r)``, started from the Mahalanobis
   distances: clear skin and clear outliers are fixed, the rest is left to GrabCut.
5. **Skin-coloured occluders**: an eye, brow or lip with little contrast to the skin around
   it, far less than the face's clearest feature, is covered by something that looks like
   skin (a hand). It is marked occluded, and a second GrabCut runs around it: near it,
   skin-like pixels are left open (they may be the hand), and the occluder's colour model is
   learnt from the feature's inpainted pixels (the colour of what covers it).
6. Occluded pieces that do not reach into the face's core are dropped (a strip of background
   where the footprint overshoots the silhouette is no occluder); the mask is brought to the
   photo with a guided filter that snaps its edges to the photo's.

Hair over the forehead is not skin, so it is an occluder, as is a beard. Measured with
``python -m d3dface.bench occlusion`` (see ``bench/results/occlusion.md``); the settings were
chosen on other seeds (renders 70000+ and occluder seeds 0-1; step 5's on renders 70000+
and the photos' original and mirrored copies, occluder seeds from 0). Step 5 took the hands'
IoU there from 0.24 to 0.30 (landmarks under a hand caught: 23% to 39%) and left the other
occluders' and the clean images' figures as they were. Refitting the face with the
found mask and segmenting again was tried and left out: mean IoU 0.869 against 0.870 at twice
the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy import ndimage

from d3dface.perception.face_layout import FaceLayout, disk
from d3dface.render import sh_basis

__all__ = ["ModelSegmentationSettings", "segment_with_model"]

_TUKEY = 4.685  # Tukey biweight constant (95 % efficiency under Gaussian noise)
_MAD_TO_SD = 1.4826
_CHI2_3_95 = 7.81  # 95 % quantile of chi-square with 3 degrees of freedom


@dataclass(frozen=True)
class ModelSegmentationSettings:
    """Knobs of :func:`segment_with_model` (sizes are fractions of the face's size, the square
    root of its footprint area in crop pixels; colours in Lab units).

    Attributes:
        grow: the footprint is grown by this much (the landmarks under occluders are guesses).
        drop: ... and extended this much downwards: a jaw guessed under a scarf or a mask is
            often too short (scarf IoU 0.89 -> 0.93, face mask 0.95 -> 0.99 on the tuning
            images).
        chroma_tolerance, chroma_share: a pixel agrees with a skin proposal when its (a*, b*)
            is this close to the proposal's, or this share of the proposal's chroma if more
            (skin in a vivid photo varies more).
        residual_scale: (min, max) robust scale of the lighting residual, L* units.
        region_coverage: a proposal gets full credit for a region when it explains this share
            of the region's pixels (real skin varies in colour across the face; a flat-coloured
            occluder explains all of the few regions it covers).
        feature_weight: weight of the visible-feature term in a proposal's score.
        ring: width of the ring around an eye, brow or lip used to judge it.
        feature_contrast: a feature pixel this far (Lab) from its ring counts as fully unlike it.
        visible_feature: features whose mean (capped) contrast exceeds this count as visible.
        broad: squared Mahalanobis distance below which a pixel informs its region's mean.
        region_prior: pixels of prior weight against a region's own mean (shrinkage).
        region_shift: largest shift of a region's mean, in Mahalanobis units.
        region_smooth: Gaussian blur of the per-region means.
        probably_skin / surely_skin / surely_not: squared Mahalanobis thresholds of GrabCut's
            start labels inside the face (probably skin below the first, fixed skin below the
            second, fixed occluder above the third).
        outside_skin: outside the grown footprint, pixels below this start as probable skin
            (others as fixed background) so that neck and ears do not teach GrabCut that skin
            is background.
        grabcut_scale: multipliers of (a*, b*, residual) in GrabCut's 8-bit image.
        grabcut_iterations: GrabCut iterations.
        min_core: occluded pieces with fewer pixels than this share of the face's core (the
            footprint shrunk by ``grow``) inside it are dropped.
        hidden_feature, hidden_feature_share: an eye, brow or lip looks hidden (by something
            as plain as skin, e.g. a hand) when its contrast with its ring is below the first
            and below this share of the face's clearest feature's (a dim, flat or blurred
            photo lowers all features' contrasts alike; so its features are not hidden).
        reach: around hidden features, this far, skin-like pixels may turn out occluded.
        snap_radius: guided-filter radius in crop pixels when bringing the mask to the photo.
        snap_eps: guided-filter regularisation (photo colours in [0, 1]).
    """

    grow: float = 0.05
    drop: float = 0.2
    chroma_tolerance: float = 5.0
    chroma_share: float = 0.16
    residual_scale: tuple[float, float] = (2.0, 5.0)
    region_coverage: float = 0.5
    feature_weight: float = 2.0
    ring: float = 0.04
    feature_contrast: float = 15.0
    visible_feature: float = 0.45
    broad: float = 16.0
    region_prior: float = 50.0
    region_shift: float = 3.0
    region_smooth: float = 0.05
    probably_skin: float = 9.0
    surely_skin: float = 4.0
    surely_not: float = 100.0
    outside_skin: float = 6.0
    grabcut_scale: tuple[float, float, float] = (3.0, 3.0, 2.0)
    grabcut_iterations: int = 4
    min_core: float = 0.003
    hidden_feature: float = 0.35
    hidden_feature_share: float = 0.3
    reach: float = 0.3
    snap_radius: float = 2.0
    snap_eps: float = 3e-2


_SD_MIN = np.array([1.0, 1.0, 2.0])  # floors of the skin model's sd in (a*, b*, residual)
_SD_MAX = np.array([4.0, 4.0, 6.0])  # caps of its starting sd (a wider start absorbs hair)
_TRIMMED_VARIANCE = 1.2  # variance of a Gaussian trimmed at its 95 % ellipsoid, inflated back
_MIN_REGION_PIXELS = 30  # regions with fewer skin pixels neither propose nor vote
_MIN_REGION_SHIFT_PIXELS = 40  # a region's mean moves only with this many skin-like pixels
_MIN_REGION_SHIFT_SHARE = 0.2  # ... making up at least this share of the region
_EXPLAINED_SIGMAS = 2.5  # a proposal explains luminance within this many residual scales
_SKIN_HUE_MIN = 2.0  # skin has a* and b* above this; other proposals' scores are damped
_NON_SKIN_HUE_DAMPING = 0.3
_INPAINT_RADIUS = 5  # pixels, cv2.inpaint (Telea)
_PROPOSAL_TERMS = 4  # a proposal's lighting: SH bands 0 and 1 (one region cannot pin band 2)
_PROPOSAL_RIDGE = 0.5  # ridge on a proposal's band-1 terms, per seed pixel
_WINDOW_PAD = 0.05  # the second GrabCut's window reaches this far (face sizes) past its zone


@dataclass(frozen=True)
class _Area:
    """The working area in the crop: grown footprint, its core, and per-pixel model data."""

    footprint: np.ndarray  # (S, S) bool, the fitted face's footprint
    grown: np.ndarray  # (S, S) bool, footprint grown by `grow` and `drop`
    core: np.ndarray  # (S, S) bool, footprint shrunk by `grow`
    skin: np.ndarray  # (S, S) bool, footprint minus eyes, brows and lips
    features: np.ndarray  # (S, S) bool, eyes, brows and lips inside the grown footprint
    regions: np.ndarray  # (S, S) int, region index, extended to the grown footprint
    shading_basis: np.ndarray  # (S, S, 9) SH basis of the (extended) normals
    size: float  # the face's size in crop pixels


def segment_with_model(
    layout: FaceLayout, settings: ModelSegmentationSettings | None = None
) -> np.ndarray:
    """Occluded pixels of the face in the layout's crop.

    Args:
        layout: the face laid out in its crop (:func:`~d3dface.perception.face_layout.face_layout`).
        settings: the knobs (defaults: :class:`ModelSegmentationSettings`).

    Returns:
        ``(S, S)`` bool, True where the face is hidden (only inside the grown footprint).
    """
    settings = settings or ModelSegmentationSettings()
    area = _working_area(layout, settings.grow, settings.drop)
    original = cv2.cvtColor(layout.crop.image.astype(np.float32), cv2.COLOR_RGB2Lab)
    pixels = np.round(layout.crop.image * 255).astype(np.uint8)
    filled = cv2.inpaint(pixels, area.features.astype(np.uint8), _INPAINT_RADIUS, cv2.INPAINT_TELEA)
    lab = cv2.cvtColor(filled.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    evidence = _feature_evidence(original, layout.features, area, settings)
    seed, explained, lighting = _skin_proposal(lab, evidence, area, settings)
    hidden = evidence.hidden(settings, area.grown.shape)
    residual = lab[..., 0] - area.shading_basis @ lighting
    typical = np.median(lab[..., 0][area.skin][explained])
    residual[~area.grown] = lab[..., 0][~area.grown] - typical  # no normals there
    appearance = np.concatenate([lab[..., 1:], residual[..., None]], axis=-1)
    distance = _skin_distance(appearance, seed, explained, area, settings)
    labels = _grabcut(appearance, _start_labels(distance, area, settings), settings)
    if hidden.any():
        labels = _regrown_from_hidden_features(appearance, labels, hidden, evidence, area, settings)
    occluded = area.grown & ((labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD))
    occluded[area.features] = _nearest_outside(occluded, area.features)[area.features]
    occluded |= hidden
    return _reaching_core(occluded, area.core, settings.min_core)


def _regrown_from_hidden_features(
    appearance: np.ndarray,
    labels: np.ndarray,
    hidden: np.ndarray,
    evidence: _FeatureEvidence,
    area: _Area,
    settings: ModelSegmentationSettings,
) -> np.ndarray:
    """GrabCut's ``labels`` ``(S, S)`` after a second GrabCut around the hidden features.

    Near them (within ``reach`` of the face's size, not in the skin ring of a visible
    feature) the first GrabCut's labels are left open, skin-like pixels included, and the
    hidden features are fixed as occluded; elsewhere its labels are fixed. It runs in the
    window around that zone, so its colour models are learnt there: the occluder's from the
    hidden features (inpainted, so they hold the colour of what covers them), the skin's from
    the skin around.
    """
    near = ndimage.distance_transform_edt(~hidden) < settings.reach * area.size
    for ring, contrast in zip(evidence.rings, evidence.contrasts, strict=True):
        if contrast > settings.visible_feature:
            near[area.skin] &= ~ring
    doubt = near & area.grown
    skin = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    start = np.where(skin, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    start[doubt] = np.where(skin, cv2.GC_PR_FGD, cv2.GC_PR_BGD)[doubt]
    start[hidden] = cv2.GC_BGD
    rows, cols = np.nonzero(doubt | hidden)
    pad = int(_WINDOW_PAD * area.size)
    window = (
        slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
        slice(max(cols.min() - pad, 0), cols.max() + pad + 1),
    )
    regrown = labels.copy()
    regrown[window] = _grabcut(appearance[window], start[window], settings)
    return regrown


def _working_area(layout: FaceLayout, grow: float, drop: float) -> _Area:
    """Grow the footprint (see :meth:`FaceLayout.grown`) and extend normals and regions to it
    (nearest footprint pixel)."""
    footprint = layout.footprint
    rows, cols = ndimage.distance_transform_edt(
        ~footprint, return_distances=False, return_indices=True
    )
    normals = torch.from_numpy(np.ascontiguousarray(layout.normals[rows, cols]))
    grown = layout.grown(grow, drop)
    features = layout.features & grown
    return _Area(
        footprint=footprint,
        grown=grown,
        core=layout.grown(-grow),
        skin=footprint & ~features,
        features=features,
        regions=layout.regions[rows, cols].astype(np.int64),
        shading_basis=sh_basis(normals).numpy().astype(np.float64),
        size=layout.size,
    )


def _robust_lighting(
    basis: np.ndarray,
    luminance: np.ndarray,
    scale: tuple[float, float],
    ridge: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Tukey-weighted least squares ``luminance ~ basis @ coef``.

    Args:
        basis: ``(N, K)`` SH basis values. luminance: ``(N,)`` L*.
        scale: (min, max) clip of the robust residual scale.
        ridge: ``(K,)`` ridge penalties, or None.
        start: ``(K,)`` coefficients whose residuals give the first weights, or None (uniform).

    Returns:
        ``(K,)`` coefficients and the final residual scale.
    """
    weights = np.ones(len(luminance))
    if start is not None:
        weights = _tukey(luminance - basis @ start, scale)[0]
    for _ in range(6):
        weighted = basis * weights[:, None]
        normal = weighted.T @ basis + (np.diag(ridge) if ridge is not None else 0.0)
        coef = np.linalg.solve(normal, weighted.T @ luminance)
        weights, sigma = _tukey(luminance - basis @ coef, scale)
    return coef, sigma


def _tukey(residual: np.ndarray, scale: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Tukey biweights ``(N,)`` of residuals and their clipped robust (MAD) scale."""
    sigma = float(np.clip(_MAD_TO_SD * np.median(np.abs(residual)), *scale))
    return np.clip(1.0 - (residual / (_TUKEY * sigma)) ** 2, 0.0, None) ** 2, sigma


@dataclass(frozen=True)
class _FeatureEvidence:
    """How visible each eye, brow and lip of the face looks (F of them)."""

    contrasts: np.ndarray  # (F,) mean capped contrast with the skin ring around each, in [0, 1]
    rings: list[np.ndarray]  # F (N_skin,) bool, the skin ring around each
    parts: list[np.ndarray]  # F (S, S) bool, each feature's pixels

    def hidden(self, settings: ModelSegmentationSettings, shape: tuple[int, int]) -> np.ndarray:
        """``(S, S)`` bool, the features that look hidden: a contrast below
        ``hidden_feature`` and below ``hidden_feature_share`` of the face's clearest feature's
        (a dim, flat or blurred photo lowers every feature's contrast alike)."""
        hidden = np.zeros(shape, bool)
        if not len(self.contrasts):
            return hidden
        limit = min(settings.hidden_feature, settings.hidden_feature_share * self.contrasts.max())
        for part, contrast in zip(self.parts, self.contrasts, strict=True):
            if contrast < limit:
                hidden |= part
        return hidden


def _feature_evidence(
    original: np.ndarray, features: np.ndarray, area: _Area, settings: ModelSegmentationSettings
) -> _FeatureEvidence:
    """How visible each eye, brow and lip looks (its contrast with the skin ring around it)."""
    count, labels = cv2.connectedComponents((features & area.footprint).astype(np.uint8))
    kernel = disk(settings.ring * area.size)
    contrasts, rings, parts = [], [], []
    for label in range(1, count):
        part = labels == label
        ring = (cv2.dilate(part.astype(np.uint8), kernel) > 0) & area.skin
        if part.sum() < 10 or ring.sum() < 10:
            continue
        difference = np.linalg.norm(original[part] - np.median(original[ring], axis=0), axis=1)
        contrasts.append(np.clip(difference / settings.feature_contrast, 0.0, 1.0).mean())
        rings.append(ring[area.skin])
        parts.append(part)
    return _FeatureEvidence(np.array(contrasts), rings, parts)


def _skin_proposal(
    lab: np.ndarray,
    evidence: _FeatureEvidence,
    area: _Area,
    settings: ModelSegmentationSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best region's skin proposal: its seed, the pixels it explains, and the lighting.

    Args:
        lab: ``(S, S, 3)`` Lab of the feature-inpainted crop. original: the same, not inpainted.
        features: ``(S, S)`` bool, the layout's eyes, brows and lips.

    Returns:
        ``(N_skin,)`` bool seed over the skin pixels (the winner's region pixels that agree
        with its chroma), ``(N_skin,)`` bool pixels it explains (chroma and lighting agree),
        and ``(9,)`` SH lighting coefficients fitted robustly to the explained pixels.

    Raises:
        ValueError: no region shows enough skin-like pixels to propose a skin colour.
    """
    skin = area.skin
    basis, luminance, chroma = area.shading_basis[skin], lab[..., 0][skin], lab[..., 1:][skin]
    regions = area.regions[skin]
    present = [r for r in np.unique(regions) if (regions == r).sum() >= _MIN_REGION_PIXELS]
    visibility, rings = evidence.contrasts - settings.visible_feature, evidence.rings
    ridge = _PROPOSAL_RIDGE * np.array([0.0, 1.0, 1.0, 1.0])  # the band-1 terms only
    low = basis[:, :_PROPOSAL_TERMS]
    best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
    for region in present:
        own = regions == region
        centre = np.median(chroma[own], axis=0)
        tolerance = max(settings.chroma_tolerance, settings.chroma_share * np.linalg.norm(centre))
        agrees = np.linalg.norm(chroma - centre, axis=1) < tolerance
        seed = own & agrees
        if seed.sum() < _MIN_REGION_PIXELS:
            continue
        coef, sigma = _robust_lighting(
            low[seed], luminance[seed], settings.residual_scale, seed.sum() * ridge
        )
        explained = agrees & (np.abs(luminance - low @ coef) < _EXPLAINED_SIGMAS * sigma)
        shares = np.array([explained[regions == r].mean() for r in present])
        score = float(np.mean(np.minimum(shares / settings.region_coverage, 1.0)))
        if rings:
            ring_share = np.array([explained[ring].mean() for ring in rings])
            score += settings.feature_weight * float(np.mean(visibility * ring_share))
        if min(centre) <= _SKIN_HUE_MIN:  # not a skin hue
            score *= _NON_SKIN_HUE_DAMPING
        if best is None or score > best[0]:
            start = np.concatenate([coef, np.zeros(basis.shape[1] - _PROPOSAL_TERMS)])
            best = (score, seed, explained, start)
    if best is None:
        raise ValueError("too little of the face is visible to tell skin from occluders")
    _, seed, explained, start = best
    lighting, _ = _robust_lighting(
        basis[explained], luminance[explained], settings.residual_scale, start=start
    )
    return seed, explained, lighting


def _skin_distance(
    appearance: np.ndarray,
    seed: np.ndarray,
    explained: np.ndarray,
    area: _Area,
    settings: ModelSegmentationSettings,
) -> np.ndarray:
    """Squared Mahalanobis distance ``(S, S)`` of each pixel's ``(a*, b*, r)`` from the skin.

    ``appearance`` is ``(S, S, 3)``; ``seed`` and ``explained`` are ``(N_skin,)`` bool from
    :func:`_skin_proposal`. A trimmed Gaussian starts at the seed's median with its (capped)
    MAD spread (started on all explained pixels it drifted to the tightest cluster among them,
    e.g. a flat-coloured hand) and is re-estimated on the explained pixels within its 95 %
    ellipsoid; each region's mean is then shifted (shrunk towards the global one, capped) and
    blurred across region borders.
    """
    start = appearance[area.skin][seed]
    samples = appearance[area.skin][explained]
    mean = np.median(start, axis=0)
    spread = np.clip(_MAD_TO_SD * np.median(np.abs(start - mean), axis=0), _SD_MIN, _SD_MAX)
    covariance = np.diag(spread**2)
    for _ in range(4):
        kept = samples[_mahalanobis(samples - mean, np.linalg.inv(covariance)) < _CHI2_3_95]
        mean = kept.mean(axis=0)
        covariance = _TRIMMED_VARIANCE * np.cov((kept - mean).T) + np.diag(_SD_MIN**2)
    inverse = np.linalg.inv(covariance)
    broad = area.skin & (_mahalanobis(appearance - mean, inverse) < settings.broad)
    means = np.broadcast_to(mean, appearance.shape).copy()
    for region in np.unique(area.regions[area.grown]):
        inside = (area.regions == region) & area.grown
        informative = broad & inside
        count = int(informative.sum())
        too_few = count < _MIN_REGION_SHIFT_PIXELS
        if too_few or count < _MIN_REGION_SHIFT_SHARE * (area.skin & inside).sum():
            continue
        shift = (np.median(appearance[informative], axis=0) - mean) * count
        shift /= count + settings.region_prior
        length = float(np.sqrt(shift @ inverse @ shift))
        if length > settings.region_shift:
            shift *= settings.region_shift / length
        means[inside] = mean + shift
    sigma = max(settings.region_smooth * area.size, 1.0)
    means = np.stack([cv2.GaussianBlur(means[..., i], (0, 0), sigma) for i in range(3)], -1)
    return _mahalanobis(appearance - means, inverse)


def _mahalanobis(difference: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """``(..., 3)`` differences -> ``(...)`` squared Mahalanobis distances."""
    return np.einsum("...i,ij,...j->...", difference, inverse, difference)


def _start_labels(
    distance: np.ndarray, area: _Area, settings: ModelSegmentationSettings
) -> np.ndarray:
    """GrabCut's start labels ``(S, S)`` uint8 from the squared skin distances."""
    labels = np.full(distance.shape, cv2.GC_BGD, np.uint8)
    labels[~area.grown & (distance < settings.outside_skin)] = cv2.GC_PR_FGD
    inside = area.grown
    labels[inside] = np.where(
        distance[inside] < settings.probably_skin, cv2.GC_PR_FGD, cv2.GC_PR_BGD
    )
    labels[inside & (distance < settings.surely_skin)] = cv2.GC_FGD
    labels[inside & (distance > settings.surely_not)] = cv2.GC_BGD
    return labels


def _grabcut(
    appearance: np.ndarray, labels: np.ndarray, settings: ModelSegmentationSettings
) -> np.ndarray:
    """GrabCut (skin = foreground) on the shading-free ``appearance`` ``(H, W, 3)`` from
    start ``labels`` ``(H, W)`` uint8 (``cv2.GC_*``); the final labels."""
    image = appearance * np.array(settings.grabcut_scale) + 128.0
    image = np.clip(image, 0, 255).astype(np.uint8)
    models = (np.zeros((1, 65)), np.zeros((1, 65)))
    labels = labels.copy()
    # GrabCut seeds its colour models with k-means on OpenCV's random stream (per thread):
    # reseeded on every call, the same photo gives the same mask whatever ran before.
    cv2.setRNGSeed(0)
    cv2.grabCut(image, labels, None, *models, settings.grabcut_iterations, cv2.GC_INIT_WITH_MASK)
    return labels


def _nearest_outside(mask: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``mask`` with every pixel of ``region`` replaced by the nearest pixel outside it."""
    rows, cols = ndimage.distance_transform_edt(region, return_distances=False, return_indices=True)
    return mask[rows, cols]


def _reaching_core(occluded: np.ndarray, core: np.ndarray, min_share: float) -> np.ndarray:
    """Keep the connected occluded pieces with at least ``min_share`` of the core inside it."""
    count, labels = cv2.connectedComponents(occluded.astype(np.uint8), connectivity=8)
    inside = np.bincount(labels[core & occluded], minlength=count)
    keep = inside >= min_share * core.sum()
    keep[0] = False
    return keep[labels]
