"""Occluders drawn onto face images, placed by the face's landmarks, with their exact masks.

:func:`draw_occluder_of_type` paints one of :data:`OCCLUDER_KINDS` onto a photo or a render:

- ``glasses``: thick-rimmed frames (bridge, temples); the lenses are clear, so only the frame
  is in the mask.
- ``sunglasses``: dark, tinted or mirrored lenses in a thin frame.
- ``face_mask``: surgical (pleats, light colours, ear loops) or cloth (any colour, patterns)
  mask from the nose to below the chin.
- ``scarf``: patterned fabric from the nose or mouth down, wider than the face.
- ``hand``: a hand and wrist in the face's own skin colour (sampled from the image) with
  shading and finger creases: the hard case, as its colour matches the face.
- ``object``: a random textured shape (solid, gradient, stripes, checks, noise) anywhere on
  the face.

Shapes are built in the face's frame (origin between the outer eye corners, x along the eye
line, y towards the chin, unit = the outer eye-corner distance), so they follow the face's size
and roll. Edges are anti-aliased; the mask is where the occluder's opacity is at least one half.
Everything random comes from the given ``numpy.random.Generator``: the same seed gives the same
image and mask.

:func:`draw_plain_face_mask` paints the simplest, deterministic case (a flat blue rectangle
from the nose tip to the chin) for tests and timing runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from d3dface.perception.face_parts import FACE_OVAL, LEFT_EYE, RIGHT_EYE

__all__ = ["OCCLUDER_KINDS", "SKIN_COLOURED_KINDS", "draw_occluder_of_type"]

OCCLUDER_KINDS = ("glasses", "sunglasses", "face_mask", "scarf", "hand", "object")
"""Every kind :func:`draw_occluder_of_type` draws."""

SKIN_COLOURED_KINDS = ("hand",)
"""Kinds drawn in the face's own skin colour."""

_SHIFT = 4  # fixed-point bits of polygon coordinates for cv2 (1/16 pixel)
_CHEEK_AND_FOREHEAD = (50, 280, 101, 330, 151, 9)  # landmarks on plain skin, for the skin tone


@dataclass(frozen=True)
class _Frame:
    """The face's frame: ``image = origin + local @ axes`` (local units: eye-corner distance).

    ``origin`` (2,) image pixels; ``axes`` (2, 2), rows = the image vectors of local +x, +y.
    """

    origin: np.ndarray
    axes: np.ndarray

    @classmethod
    def of(cls, landmarks: np.ndarray) -> _Frame:
        """The frame of a face from its ``(478, 2)`` landmarks (outer eye corners 33, 263)."""
        right, left = landmarks[33], landmarks[263]
        x_axis = left - right
        y_axis = np.array([-x_axis[1], x_axis[0]])
        return cls(origin=(right + left) / 2, axes=np.stack([x_axis, y_axis]))

    @property
    def unit(self) -> float:
        """Pixels per local unit."""
        return float(np.linalg.norm(self.axes[0]))

    def to_image(self, local: np.ndarray) -> np.ndarray:
        """``(..., 2)`` local -> ``(..., 2)`` image pixels."""
        return self.origin + np.asarray(local, dtype=np.float64) @ self.axes

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2)`` image pixels -> ``(..., 2)`` local."""
        return (np.asarray(points, dtype=np.float64) - self.origin) @ np.linalg.inv(self.axes)


Texture = Callable[[np.ndarray], np.ndarray]
"""Colours of an occluder: ``(h, w, 2)`` local coordinates -> ``(h, w, 3)`` RGB in 0..255."""


def draw_occluder_of_type(
    image: np.ndarray, landmarks_px: np.ndarray, kind: str, generator: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one occluder of a given kind onto a face.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photo or render.
        landmarks_px: ``(478, 2)`` MediaPipe landmarks of the face, image pixels.
        kind: one of :data:`OCCLUDER_KINDS`.
        generator: the random stream (``numpy.random.default_rng(seed)``).

    Returns:
        The painted copy ``(H, W, 3)`` uint8 and its mask ``(H, W)`` bool (True = occluder).
    """
    if kind not in _DRAWERS:
        raise ValueError(f"unknown occluder kind {kind!r}; choose from {OCCLUDER_KINDS}")
    landmarks = np.asarray(landmarks_px, dtype=np.float64)
    if landmarks.shape != (478, 2):
        raise ValueError(f"landmarks_px must be (478, 2), got {landmarks.shape}")
    frame = _Frame.of(landmarks)
    alpha = np.zeros(image.shape[:2], np.uint8)
    texture = _DRAWERS[kind](alpha, image, landmarks, frame, generator)
    return _composite(image, alpha, texture, frame), alpha >= 128


def draw_plain_face_mask(
    image: np.ndarray, landmarks_px: np.ndarray, chin_margin_px: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a flat blue rectangle from the nose tip to the chin, cheek to cheek.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        landmarks_px: ``(478, 2)`` MediaPipe landmarks, image pixels.
        chin_margin_px: how far below the chin the rectangle reaches.

    Returns:
        The painted copy ``(H, W, 3)`` uint8 and its mask ``(H, W)`` bool.
    """
    points = np.asarray(landmarks_px)
    mask = np.zeros(image.shape[:2], bool)
    rows = slice(int(points[2, 1]), int(points[152, 1]) + chin_margin_px)  # nose tip, chin
    mask[rows, int(points[234, 0]) : int(points[454, 0])] = True  # cheek to cheek
    painted = image.copy()
    painted[mask] = (70, 110, 190)
    return painted, mask


# ---------------------------------------------------------------------- drawing primitives
def _fixed(points: np.ndarray) -> np.ndarray:
    """Image points ``(K, 2)`` -> cv2 fixed-point int32 ``(K, 1, 2)``."""
    return np.round(np.asarray(points) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _fill(alpha: np.ndarray, polygon: np.ndarray) -> None:
    """Fill an image-pixel polygon ``(K, 2)`` into the ``(H, W)`` uint8 opacity canvas."""
    cv2.fillPoly(alpha, [_fixed(polygon)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)


def _stroke(alpha: np.ndarray, polyline: np.ndarray, width_px: float, closed: bool) -> None:
    """Draw an image-pixel polyline ``(K, 2)`` of a given width into the opacity canvas."""
    thickness = max(round(width_px), 1)
    cv2.polylines(
        alpha, [_fixed(polyline)], closed, 255, thickness, lineType=cv2.LINE_AA, shift=_SHIFT
    )


def _superellipse(centre: np.ndarray, half: np.ndarray, power: float, n: int = 64) -> np.ndarray:
    """``(n, 2)`` outline of ``|x/a|^p + |y/b|^p = 1`` around ``centre`` (local units)."""
    angle = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    cos, sin = np.cos(angle), np.sin(angle)
    x = half[0] * np.sign(cos) * np.abs(cos) ** (2.0 / power)
    y = half[1] * np.sign(sin) * np.abs(sin) ** (2.0 / power)
    return np.asarray(centre) + np.stack([x, y], axis=1)


def _rotated_box(centre: np.ndarray, half: np.ndarray, angle: float, power: float) -> np.ndarray:
    """A superellipse (local units) rotated by ``angle`` radians about its centre."""
    shape = _superellipse(np.zeros(2), half, power)
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    return np.asarray(centre) + shape @ rotation


def _composite(image: np.ndarray, alpha: np.ndarray, texture: Texture, frame: _Frame) -> np.ndarray:
    """Blend ``texture`` onto ``image`` with opacity ``alpha``, only in the drawn box."""
    result = image.copy()
    rows, cols = np.nonzero(alpha)
    if len(rows) == 0:
        return result
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    grid_x, grid_y = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    local = frame.to_local(np.stack([grid_x, grid_y], axis=-1))
    colours = np.clip(texture(local), 0.0, 255.0)
    weight = alpha[y0:y1, x0:x1, None].astype(np.float64) / 255.0
    blended = result[y0:y1, x0:x1] * (1.0 - weight) + colours * weight
    result[y0:y1, x0:x1] = np.round(blended).astype(np.uint8)
    return result


# ---------------------------------------------------------------------- textures
def _noise(local: np.ndarray, seed: int, scale: float) -> np.ndarray:
    """Smooth value noise in ``[-1, 1]`` of shape ``(h, w)``, fixed in the face's frame.

    A ``(32, 32)`` random lattice spanning 4 local units, bicubically resampled at the
    local coordinates divided by ``scale`` (local units per noise cell).
    """
    lattice = np.random.default_rng(seed).uniform(-1.0, 1.0, (32, 32)).astype(np.float32)
    coords = (local / scale) % 32.0
    return cv2.remap(
        lattice,
        coords[..., 0].astype(np.float32),
        coords[..., 1].astype(np.float32),
        cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_WRAP,
    ).astype(np.float64)


def _pattern(rng: np.random.Generator, base: np.ndarray) -> Texture:
    """A random fabric / surface texture around a base colour ``(3,)`` 0..255."""
    other = rng.uniform(0, 255, 3)
    kind = rng.choice(["solid", "gradient", "stripes", "checks", "noise"])
    angle = rng.uniform(0.0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    period = rng.uniform(0.06, 0.25)
    seed = int(rng.integers(1 << 31))

    def texture(local: np.ndarray) -> np.ndarray:
        along = local @ direction
        if kind == "gradient":
            t = np.clip(0.5 + along, 0.0, 1.0)[..., None]
        elif kind == "stripes":
            t = (np.sin(2 * np.pi * along / period) > 0.3)[..., None].astype(np.float64)
        elif kind == "checks":
            across = local @ np.array([-direction[1], direction[0]])
            cells = np.floor(along / period) + np.floor(across / period)
            t = (cells % 2)[..., None]
        elif kind == "noise":
            t = (0.5 + 0.5 * _noise(local, seed, period))[..., None]
        else:
            t = np.zeros((*local.shape[:2], 1))
        grain = 6.0 * _noise(local, seed + 1, 0.01)[..., None]
        return base * (1.0 - t) + other * t + grain

    return texture


def _shaded(base: np.ndarray, rng: np.random.Generator, strength: float) -> Texture:
    """A colour ``(3,)`` under a smooth random light gradient and faint grain."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    seed = int(rng.integers(1 << 31))

    def texture(local: np.ndarray) -> np.ndarray:
        light = 1.0 + strength * np.tanh(local @ direction)[..., None]
        grain = 4.0 * _noise(local, seed, 0.015)[..., None]
        return base * light + grain

    return texture


# ---------------------------------------------------------------------- the occluders
def _eye_centres(landmarks: np.ndarray, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """Local centres of the subject's right and left eye."""
    return (
        frame.to_local(landmarks[list(RIGHT_EYE)].mean(axis=0)),
        frame.to_local(landmarks[list(LEFT_EYE)].mean(axis=0)),
    )


def _draw_spectacles(
    alpha: np.ndarray,
    landmarks: np.ndarray,
    frame: _Frame,
    rng: np.random.Generator,
    dark_lenses: bool,
) -> list[np.ndarray]:
    """Frames (and, with ``dark_lenses``, filled lenses); returns the lens outlines (local)."""
    half = np.array([rng.uniform(0.23, 0.29), rng.uniform(0.15, 0.22)])
    if dark_lenses:
        half = half + np.array([0.02, rng.uniform(0.01, 0.05)])
    power = rng.uniform(2.0, 5.0)
    drop = rng.uniform(0.0, 0.05)
    rim = (rng.uniform(0.015, 0.04) if dark_lenses else rng.uniform(0.035, 0.07)) * frame.unit
    lenses = []
    for sign, centre in zip((-1.0, 1.0), _eye_centres(landmarks, frame), strict=True):
        lens_centre = centre + np.array([sign * rng.uniform(0.0, 0.03), drop])
        lens = _superellipse(lens_centre, half, power)
        lenses.append(lens)
        if dark_lenses:
            _fill(alpha, frame.to_image(lens))
        _stroke(alpha, frame.to_image(lens), rim, closed=True)
        outer_edge = lens_centre + np.array([sign * half[0], -0.3 * half[1]])
        ear = frame.to_local(landmarks[356 if sign > 0 else 127])
        temple = np.stack([outer_edge, outer_edge + 1.1 * (ear - outer_edge)])
        _stroke(alpha, frame.to_image(temple), 0.8 * rim, closed=False)
    right, left = lenses
    top = min(right[:, 1].min(), left[:, 1].min()) + 0.35 * half[1]
    bridge = np.array(
        [
            [right[:, 0].max(), top + 0.1 * half[1]],
            [0.0, top - 0.05],
            [left[:, 0].min(), top + 0.1 * half[1]],
        ]
    )
    _stroke(alpha, frame.to_image(bridge), rim, closed=False)
    return lenses


_FRAME_COLOURS = np.array(
    [[20, 20, 22], [70, 45, 30], [150, 110, 60], [190, 190, 195], [150, 30, 40], [30, 50, 120]]
)
_LENS_COLOURS = np.array([[18, 18, 20], [55, 38, 25], [30, 45, 32], [25, 35, 60], [50, 50, 56]])


def _glasses(
    alpha: np.ndarray,
    image: np.ndarray,
    landmarks: np.ndarray,
    frame: _Frame,
    rng: np.random.Generator,
) -> Texture:
    _draw_spectacles(alpha, landmarks, frame, rng, dark_lenses=False)
    return _shaded(_FRAME_COLOURS[rng.integers(len(_FRAME_COLOURS))].astype(float), rng, 0.2)


def _sunglasses(
    alpha: np.ndarray,
    image: np.ndarray,
    landmarks: np.ndarray,
    frame: _Frame,
    rng: np.random.Generator,
) -> Texture:
    lenses = _draw_spectacles(alpha, landmarks, frame, rng, dark_lenses=True)
    mirrored = rng.uniform() < 0.25
    tint = _LENS_COLOURS[rng.integers(len(_LENS_COLOURS))].astype(float)
    top = min(lens[:, 1].min() for lens in lenses)
    bottom = max(lens[:, 1].max() for lens in lenses)
    glint = lenses[rng.integers(2)].mean(axis=0) + rng.uniform(-0.08, 0.08, 2)

    def texture(local: np.ndarray) -> np.ndarray:
        t = np.clip((local[..., 1] - top) / max(bottom - top, 1e-6), 0.0, 1.0)[..., None]
        if mirrored:
            colour = np.array([200.0, 215.0, 235.0]) * (1 - t) + np.array([70.0, 80, 95]) * t
        else:
            colour = tint * (0.7 + 0.6 * t)
        spot = np.exp(-(((local - glint) / np.array([0.06, 0.03])) ** 2).sum(-1))[..., None]
        return colour + 90.0 * spot

    return texture


def _mask_outline(
    landmarks: np.ndarray, frame: _Frame, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Local outline ``(K, 2)`` of a face mask from the nose bridge around the jaw, and its two
    ear loops (each ``(3, 2)``: mask edge, ear, mask edge)."""
    oval = frame.to_local(landmarks[list(FACE_OVAL)])
    nose_root, nose_tip = frame.to_local(landmarks[168]), frame.to_local(landmarks[1])
    bridge = nose_root + rng.uniform(0.3, 0.6) * (nose_tip - nose_root)
    lower = oval[oval[:, 1] > bridge[1] + 0.05]
    lower = nose_tip + (lower - nose_tip) * rng.uniform(1.04, 1.12)
    lower[:, 1] += np.clip(lower[:, 1] - nose_tip[1], 0.0, None) * rng.uniform(0.1, 0.3)
    # all below the bridge: by angle about it, from the image's right under the chin to its left
    order = np.argsort(np.arctan2(lower[:, 1] - bridge[1], lower[:, 0] - bridge[0]))
    lower = lower[order]
    image_left = np.array([lower[-1, 0], bridge[1] + 0.08])
    image_right = np.array([lower[0, 0], bridge[1] + 0.08])
    top = np.stack(
        [
            image_left,
            (image_left + bridge) / 2 + np.array([0.0, 0.02]),
            bridge,
            (image_right + bridge) / 2 + np.array([0.0, 0.02]),
            image_right,
        ]
    )
    outline = np.concatenate([top, lower])
    loops = []
    for corner, ear, low in (
        (image_left, landmarks[234], lower[int(0.8 * (len(lower) - 1))]),
        (image_right, landmarks[454], lower[int(0.2 * (len(lower) - 1))]),
    ):
        ear = frame.to_local(ear)
        ear = ear + np.array([0.1 * np.sign(ear[0] - bridge[0]), 0.0])
        loops.append(np.stack([corner, ear, low]))
    return outline, loops


_SURGICAL_COLOURS = np.array(
    [[150, 190, 222], [236, 236, 238], [32, 32, 36], [232, 182, 196], [172, 214, 200]]
)


def _face_mask(
    alpha: np.ndarray,
    image: np.ndarray,
    landmarks: np.ndarray,
    frame: _Frame,
    rng: np.random.Generator,
) -> Texture:
    outline, loops = _mask_outline(landmarks, frame, rng)
    _fill(alpha, frame.to_image(outline))
    for loop in loops:
        _stroke(alpha, frame.to_image(loop), 0.012 * frame.unit, closed=False)
    surgical = rng.uniform() < 0.5
    if not surgical:
        return _pattern(rng, rng.uniform(0, 255, 3))
    base = _SURGICAL_COLOURS[rng.integers(len(_SURGICAL_COLOURS))].astype(float)
    top, bottom = outline[:, 1].min(), outline[:, 1].max()
    pleats = top + (bottom - top) * np.array([0.3, 0.45, 0.6])

    def texture(local: np.ndarray) -> np.ndarray:
        fold = sum(np.exp(-(((local[..., 1] - y) / 0.012) ** 2)) for y in pleats)
        side = 1.0 - 0.25 * np.clip(np.abs(local[..., 0]) - 0.2, 0.0, None)
        return base * (side - 0.18 * fold)[..., None]

    return texture


def _scarf(
    alpha: np.ndarray,
    image: np.ndarray,
    landmarks: np.ndarray,
    frame: _Frame,
    rng: np.random.Generator,
) -> Texture:
    nose, chin = frame.to_local(landmarks[1]), frame.to_local(landmarks[152])
    top = nose[1] + rng.uniform(0.05, 0.75) * (chin[1] - nose[1])
    x = np.linspace(-1.4, 1.4, 40)
    wave = rng.uniform(0.02, 0.06) * np.sin(x * rng.uniform(4.0, 9.0) + rng.uniform(0, 6.3))
    upper = np.stack([x, top + wave + 0.08 * x**2], axis=1)
    lower = np.array([[1.4, chin[1] + 1.5], [-1.4, chin[1] + 1.5]])
    _fill(alpha, frame.to_image(np.concatenate([upper, lower])))
    fabric = _pattern(rng, rng.uniform(0, 255, 3))
    folds = rng.uniform(5.0, 12.0)

    def texture(local: np.ndarray) -> np.ndarray:
        return fabric(local) * (0.9 + 0.1 * np.sin(folds * local[..., 0]))[..., None]

    return texture


def _skin_tone(image: np.ndarray, landmarks: np.ndarray, frame: _Frame) -> np.ndarray:
    """Median RGB ``(3,)`` of small disks around plain-skin landmarks (cheeks, forehead)."""
    radius = max(round(0.06 * frame.unit), 1)
    disks = np.zeros(image.shape[:2], np.uint8)
    for index in _CHEEK_AND_FOREHEAD:
        centre = tuple(int(v) for v in np.round(landmarks[index]))
        cv2.circle(disks, centre, radius, 255, -1)
    pixels = image[disks > 0]
    return np.median(pixels, axis=0) if len(pixels) else np.array([190.0, 150.0, 130.0])


_HAND_TARGETS = (13, 152, 50, 280, 159, 386, 1)  # mouth, chin, cheeks, eyes, nose


def _hand_outline(rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Local hand parts (palm frame: fingers towards -y), and the finger gap creases."""
    width = rng.uniform(0.75, 1.0)
    palm = _superellipse(np.zeros(2), np.array([width / 2, 0.45 * width]), 4.0)
    wrist = np.array([[-0.33, 0.3], [0.33, 0.3], [0.38, 2.0], [-0.38, 2.0]]) * width
    parts, creases = [palm, wrist], []
    finger_w = width / 4.3
    lengths = np.array([0.78, 0.9, 0.85, 0.65]) * width * rng.uniform(0.9, 1.1)
    spread = rng.uniform(0.0, 0.12)
    for i, length in enumerate(lengths):
        base_x = (-1.5 + i) * width / 4
        angle = (i - 1.5) * spread
        centre = np.array([base_x + np.sin(angle) * length / 2, -0.4 * width - length / 2])
        parts.append(_rotated_box(centre, np.array([finger_w / 2, length / 2]), angle, 2.5))
        if i:
            gap = base_x - width / 8
            creases.append(np.array([[gap, -0.42 * width], [gap, -0.2 * width]]))
    thumb_angle = rng.uniform(0.6, 1.1)
    thumb_centre = np.array([0.5 * width + 0.25 * width * np.sin(thumb_angle), -0.05 * width])
    parts.append(_rotated_box(thumb_centre, np.array([0.12, 0.3]) * width, thumb_angle, 2.5))
    return parts, creases


def _hand(
    alpha: np.ndarray,
    image: np.ndarray,
    landmarks: np.ndarray,
    frame: _Frame,
    rng: np.random.Generator,
) -> Texture:
    parts, creases = _hand_outline(rng)
    angle = rng.uniform(-np.pi, np.pi)
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    target = frame.to_local(landmarks[_HAND_TARGETS[rng.integers(len(_HAND_TARGETS))]])
    offset = target + rng.uniform(-0.15, 0.15, 2)
    for part in parts:
        _fill(alpha, frame.to_image(offset + part @ rotation))
    seams = np.zeros_like(alpha)
    for crease in creases:
        _stroke(seams, frame.to_image(offset + crease @ rotation), 0.015 * frame.unit, False)
    skin = _skin_tone(image, landmarks, frame)
    skin = skin * rng.uniform(0.85, 1.15) + rng.uniform(-12.0, 12.0, 3)
    shading = _shaded(skin, rng, 0.15)
    origin, axes = frame.origin, frame.axes

    def texture(local: np.ndarray) -> np.ndarray:
        pixels = origin + local @ axes
        cols = np.clip(pixels[..., 0].astype(int), 0, seams.shape[1] - 1)
        rows = np.clip(pixels[..., 1].astype(int), 0, seams.shape[0] - 1)
        crease = seams[rows, cols][..., None] / 255.0
        return shading(local) * (1.0 - 0.25 * crease)

    return texture


def _object(
    alpha: np.ndarray,
    image: np.ndarray,
    landmarks: np.ndarray,
    frame: _Frame,
    rng: np.random.Generator,
) -> Texture:
    centre = frame.to_local(landmarks[rng.integers(468)]) + rng.uniform(-0.15, 0.15, 2)
    half = rng.uniform(0.15, 0.55, 2)
    angle = rng.uniform(0.0, np.pi)
    shape = rng.choice(["box", "ellipse", "polygon"])
    if shape == "polygon":
        corners = rng.integers(5, 10)
        turn = np.sort(rng.uniform(0.0, 2.0 * np.pi, corners))
        radius = rng.uniform(0.5, 1.0, corners)
        outline = centre + np.stack([np.cos(turn), np.sin(turn)], axis=1) * radius[:, None] * half
    else:
        outline = _rotated_box(centre, half, angle, 6.0 if shape == "box" else 2.0)
    _fill(alpha, frame.to_image(outline))
    return _pattern(rng, rng.uniform(0, 255, 3))


_DRAWERS: dict[
    str, Callable[[np.ndarray, np.ndarray, np.ndarray, _Frame, np.random.Generator], Texture]
] = {
    "glasses": _glasses,
    "sunglasses": _sunglasses,
    "face_mask": _face_mask,
    "scarf": _scarf,
    "hand": _hand,
    "object": _object,
}
"""Kind -> function that draws the occluder's opacity into the canvas and returns its texture."""
