"""Face detection and 478 dense face landmarks with MediaPipe Face Mesh.

Coordinates are in the pixels of the image passed to :meth:`LandmarkDetector.detect`: x grows
to the right, y grows downwards, and pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``, so its
centre is at ``(i + 0.5, j + 0.5)``. A MediaPipe landmark at normalised ``(x, y)`` lands at
``(x * W, y * H)``. Landmark indices follow MediaPipe's canonical face mesh (468 mesh points
plus 10 iris points, 468..477); e.g. 33 and 263 are the outer eye corners of the subject's right
and left eye (image left and right for a frontal face), 1 is the nose tip and 13 the middle of
the upper lip's inner edge.

Face Mesh run on a whole photo misses faces narrower than about 15 % of the photo (its
internal detector is MediaPipe's short-range model) as well as tight close-ups. So detection
runs in two stages: MediaPipe's short- and full-range face detectors find face boxes (together
down to faces about 6 % of the photo's width; a photo without any is retried with a grey border
around it, which makes a tight close-up look like a portrait, and then tile by tile, which finds
smaller faces: one 3 % of the photo's width, a person far off in a wide shot), then Face Mesh
runs on a square crop around each box, padded with grey where it leaves the image, so that every
face fills a similar part of its crop.

The models ship inside the ``mediapipe`` wheel; nothing is downloaded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from d3dface.imageio import downscale_to

__all__ = [
    "DEFAULT_MAX_FACES",
    "DEFAULT_MIN_FACE_PX",
    "MAX_DETECT_SIDE",
    "NUM_LANDMARKS",
    "ChosenFace",
    "FaceLandmarks",
    "LandmarkDetector",
    "NoFaceError",
    "choose_face",
    "default_detector",
    "detect_face",
    "size_rank",
]

NUM_LANDMARKS = 478
"""Landmarks per face: MediaPipe's 468 mesh points plus 10 refined iris points."""

DEFAULT_MAX_FACES = 5
"""Most faces :class:`LandmarkDetector` returns per image by default (the largest ones)."""

DEFAULT_MIN_FACE_PX = 40.0
"""Default smallest kept face, as the diagonal of its landmark box in original-image pixels.

A 40 px diagonal is a face roughly 28 x 28 px: below that the landmarks are too coarse to fit a
3D face to, and such detections are mostly background faces or false positives.
"""

MAX_DETECT_SIDE = 1920
"""Images whose longer side exceeds this are detected on a downscaled copy (MediaPipe resizes
its input to a few hundred pixels anyway; huge inputs only cost time)."""

_CROP_PER_BOX = 2.5
"""Side of the square Face Mesh crop over the longer side of the detector's face box (which
spans roughly brows to mouth), so the face covers about half of the crop."""

_MAX_CROP_SIDE = 768
"""Crops larger than this are shrunk to it; Face Mesh's landmark model itself sees 256 px."""

_CLOSEUP_PAD = 0.5
"""Grey border, as a fraction of the image's longer side, added on each side for the retry
when no face box is found, so that a tight close-up looks like an ordinary portrait."""

_TILE_FRACTIONS = (0.5, 0.25)
"""Tile sides, as fractions of the working image's longer side, of the last retry when no face
box is found: tiles of half the side, then of a quarter, each overlapping its neighbours by half
(3 x 3 and 7 x 7 tiles on a square photo). The detectors see a whole photo at 128 / 192 px, so a
face under about 6 % of its width is a few pixels to them; on a quarter tile it is four times
larger. Only photos in which no face box is found otherwise pay for it."""

_GREY = (128, 128, 128)
"""RGB fill for the border added around close-ups and around crops that leave the image."""

_BOX_OVERLAP_IOU = 0.3
"""Detector boxes overlapping more than this are one face (the short- and full-range
detectors usually both report each face)."""

_FACE_OVERLAP_IOU = 0.5
"""Landmark boxes overlapping more than this are the same face found twice."""

_MESHES_PER_CROP = 3
"""Faces Face Mesh may report per crop; the one nearest the crop's centre is kept, so a
neighbour's face at the crop's edge cannot replace the wanted one."""


class NoFaceError(ValueError):
    """No usable face was found in the image."""


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """The 478 landmarks of one face, in original-image pixel coordinates.

    Attributes:
        points: ``(478, 2)`` float32, ``(x, y)`` pixel coordinates (see the module docstring
            for the convention). Points of a face cut by the image border may lie outside it.
        z: ``(478,)`` float32, MediaPipe's relative depth scaled to the same pixel units as x
            (normalised ``z * W``); smaller is closer to the camera, roughly zero at the head's
            centre.
        bbox: ``(4,)`` float32, ``(x0, y0, x1, y1)`` box around ``points``.
        score: Detector confidence in ``[0, 1]``: for faces from :class:`LandmarkDetector`,
            the score of the face detector box the landmarks were found in; ``1.0`` when
            unknown.

    The arrays are read-only copies of the given ones.
    """

    points: np.ndarray
    z: np.ndarray
    bbox: np.ndarray
    score: float = 1.0

    def __post_init__(self) -> None:
        """Check shapes and store read-only float32 copies of the arrays."""
        expected = {"points": (NUM_LANDMARKS, 2), "z": (NUM_LANDMARKS,), "bbox": (4,)}
        for name, shape in expected.items():
            array = np.array(getattr(self, name), dtype=np.float32)
            if array.shape != shape:
                raise ValueError(f"FaceLandmarks.{name} must have shape {shape}, got {array.shape}")
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def size(self) -> float:
        """Diagonal of :attr:`bbox` in pixels; faces are sorted and filtered by it."""
        x0, y0, x1, y1 = (float(v) for v in self.bbox)
        return float(np.hypot(x1 - x0, y1 - y0))


class LandmarkDetector:
    """Reusable face detector plus MediaPipe Face Mesh (static images, refined iris landmarks).

    The MediaPipe graphs (short- and full-range face detection and Face Mesh) are built once in
    the constructor and reused by every :meth:`detect` call. Calls are serialised with a lock,
    so one detector may be shared between threads. Use it as a context manager or call
    :meth:`close` to free the graphs.

    Args:
        max_num_faces: Most faces returned per image.
        min_detection_confidence: Face detector score threshold in ``[0, 1]``.
        min_face_px: Faces whose landmark box diagonal (original-image pixels) is smaller than
            this are dropped; see :data:`DEFAULT_MIN_FACE_PX`.
        max_detect_side: Images with a longer side above this are detected on a copy shrunk to
            this size; landmarks are still returned in the original image's pixels.
    """

    def __init__(
        self,
        max_num_faces: int = DEFAULT_MAX_FACES,
        min_detection_confidence: float = 0.5,
        min_face_px: float = DEFAULT_MIN_FACE_PX,
        max_detect_side: int = MAX_DETECT_SIDE,
    ) -> None:
        if max_num_faces < 1:
            raise ValueError(f"max_num_faces must be at least 1, got {max_num_faces}")
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError(
                f"min_detection_confidence must be in [0, 1], got {min_detection_confidence}"
            )
        if max_detect_side < 1:
            raise ValueError(f"max_detect_side must be at least 1, got {max_detect_side}")
        # Imported here so that importing this module (e.g. for FaceLandmarks) stays cheap.
        import mediapipe as mp

        self.max_num_faces = int(max_num_faces)
        self.min_face_px = float(min_face_px)
        self.max_detect_side = int(max_detect_side)
        self._lock = threading.Lock()
        self._box_finders: list[Any] = [
            mp.solutions.face_detection.FaceDetection(
                model_selection=model, min_detection_confidence=min_detection_confidence
            )
            for model in (0, 1)  # short range (close, large faces), full range (small faces)
        ]
        self._mesh: Any = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            refine_landmarks=True,
            max_num_faces=_MESHES_PER_CROP,
            min_detection_confidence=min_detection_confidence,
        )
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        """Find the faces in an image and their landmarks.

        Args:
            image: ``(H, W, 3)`` uint8 RGB image (as returned by
                :func:`d3dface.imageio.load_image`).

        Returns:
            Up to ``max_num_faces`` :class:`FaceLandmarks`, one per face at least
            ``min_face_px`` in size, sorted by :attr:`FaceLandmarks.size`, largest first;
            ``[]`` when there is none. ``score`` is the face detector's confidence.

        Raises:
            ValueError: ``image`` is not an ``(H, W, 3)`` uint8 array.
            RuntimeError: The detector has been closed.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} and dtype "
                f"{image.dtype}; load photos with d3dface.imageio.load_image"
            )
        height, width = image.shape[:2]
        small, _ = downscale_to(image, self.max_detect_side)
        small = np.ascontiguousarray(small)
        # Per-axis factor from working-image to original pixels (exact despite size rounding).
        to_original = np.array([width / small.shape[1], height / small.shape[0]])
        faces = []
        with self._lock:
            if self._closed:
                raise RuntimeError("this LandmarkDetector has been closed; create a new one")
            boxes = self._find_boxes(small, pad_fraction=0.0)
            if len(boxes) == 0:
                boxes = self._find_boxes(small, pad_fraction=_CLOSEUP_PAD)
            if len(boxes) == 0:
                boxes = self._find_boxes_in_tiles(small)
            for box in boxes:
                found = self._mesh_in_box(small, box)
                if found is None:
                    continue
                points, z = found
                points = points * to_original
                bbox = np.concatenate([points.min(axis=0), points.max(axis=0)])
                faces.append(
                    FaceLandmarks(
                        points=points, z=z * to_original[0], bbox=bbox, score=float(box[4])
                    )
                )
        faces = _drop_duplicates(faces)
        faces = [face for face in faces if face.size >= self.min_face_px]
        faces.sort(key=lambda face: face.size, reverse=True)
        return faces[: self.max_num_faces]

    def _find_boxes(self, image: np.ndarray, pad_fraction: float) -> np.ndarray:
        """Face boxes from both detectors, merged.

        Args:
            image: ``(h, w, 3)`` uint8 RGB working image.
            pad_fraction: Grey border added on each side before detecting, as a fraction of the
                longer side (boxes are still returned in ``image``'s pixels).

        Returns:
            ``(N, 5)`` float64 rows ``(x0, y0, x1, y1, score)``, highest score first.
        """
        pad = round(pad_fraction * max(image.shape[:2]))
        source = image
        if pad:
            source = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=_GREY)
        # Detections are normalised, so they map through the padded size even if shrunk.
        src_h, src_w = source.shape[:2]
        source = np.ascontiguousarray(downscale_to(source, self.max_detect_side)[0])
        rows = []
        for finder in self._box_finders:
            for detection in finder.process(source).detections or ():
                rel = detection.location_data.relative_bounding_box
                x0, y0 = rel.xmin * src_w - pad, rel.ymin * src_h - pad
                x1, y1 = x0 + rel.width * src_w, y0 + rel.height * src_h
                rows.append((x0, y0, x1, y1, detection.score[0]))
        return _merge_boxes(np.array(rows, dtype=np.float64).reshape(-1, 5))

    def _find_boxes_in_tiles(self, image: np.ndarray) -> np.ndarray:
        """Face boxes found tile by tile (see :data:`_TILE_FRACTIONS`), merged; the smaller
        tiles only when the larger found none.

        Args:
            image: ``(h, w, 3)`` uint8 RGB working image.

        Returns:
            ``(N, 5)`` float64 rows ``(x0, y0, x1, y1, score)`` in ``image``'s pixels, highest
            score first.
        """
        height, width = image.shape[:2]
        for fraction in _TILE_FRACTIONS:
            side = round(fraction * max(height, width))
            found = []
            for top in _tile_starts(height, side):
                for left in _tile_starts(width, side):
                    tile = np.ascontiguousarray(image[top : top + side, left : left + side])
                    boxes = self._find_boxes(tile, pad_fraction=0.0)
                    found.append(boxes + np.array([left, top, left, top, 0.0]))
            boxes = _merge_boxes(np.concatenate(found))
            if len(boxes):
                return boxes
        return boxes

    def _mesh_in_box(
        self, image: np.ndarray, box: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Run Face Mesh on a grey-padded square crop around one detector box.

        Args:
            image: ``(h, w, 3)`` uint8 RGB working image.
            box: ``(5,)`` detector box ``(x0, y0, x1, y1, score)`` in ``image`` pixels.

        Returns:
            ``(points, z)``: ``(478, 2)`` and ``(478,)`` float64 in ``image`` pixels, for the
            face nearest the box centre; ``None`` if Face Mesh finds no face in the crop.
        """
        height, width = image.shape[:2]
        centre = (box[:2] + box[2:4]) / 2
        side = int(np.ceil(_CROP_PER_BOX * max(box[2] - box[0], box[3] - box[1])))
        left, top = (int(np.floor(c - side / 2)) for c in centre)
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + side, width), min(top + side, height)
        if x1 <= x0 or y1 <= y0:
            return None
        patch, _ = downscale_to(image[y0:y1, x0:x1], _MAX_CROP_SIDE)
        # Working-image pixels per crop pixel, exact per axis despite size rounding.
        step = np.array([(x1 - x0) / patch.shape[1], (y1 - y0) / patch.shape[0]])
        pad_left, pad_top = round((x0 - left) / step[0]), round((y0 - top) / step[1])
        pad_right = max(round((left + side - x1) / step[0]), 0)
        pad_bottom = max(round((top + side - y1) / step[1]), 0)
        crop = cv2.copyMakeBorder(
            np.ascontiguousarray(patch),
            pad_top,
            pad_bottom,
            pad_left,
            pad_right,
            cv2.BORDER_CONSTANT,
            value=_GREY,
        )
        result = self._mesh.process(crop)
        best = None
        for face in result.multi_face_landmarks or ():
            # (478, 3): x, y normalised to the crop's width and height; z in crop widths.
            normalised = np.array([(lm.x, lm.y, lm.z) for lm in face.landmark], dtype=np.float64)
            crop_size = np.array([crop.shape[1], crop.shape[0]])
            points = (normalised[:, :2] * crop_size - (pad_left, pad_top)) * step + (x0, y0)
            distance = float(np.linalg.norm(points.mean(axis=0) - centre))
            if best is None or distance < best[0]:
                best = (distance, points, normalised[:, 2] * crop_size[0] * step[0])
        return None if best is None else (best[1], best[2])

    def close(self) -> None:
        """Free the MediaPipe graphs. Further :meth:`detect` calls raise ``RuntimeError``."""
        with self._lock:
            if not self._closed:
                for graph in (*self._box_finders, self._mesh):
                    graph.close()
                self._closed = True

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _merge_boxes(boxes: np.ndarray) -> np.ndarray:
    """Detector boxes ``(N, 5)`` rows ``(x0, y0, x1, y1, score)`` with each face's best box
    kept (boxes overlapping by more than :data:`_BOX_OVERLAP_IOU` are one face), highest score
    first."""
    boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
    kept: list[np.ndarray] = []
    for box in boxes:
        if all(_iou(box[:4], other[:4]) <= _BOX_OVERLAP_IOU for other in kept):
            kept.append(box)
    return np.array(kept, dtype=np.float64).reshape(-1, 5)


def _tile_starts(length: int, side: int) -> list[int]:
    """Start offsets of tiles ``side`` pixels long that cover ``length`` pixels, each
    overlapping the next by half (the last one ends at the edge): ``[0]`` when one tile covers
    it all."""
    if side >= length:
        return [0]
    step = max(side // 2, 1)
    starts = list(range(0, length - side, step))
    return [*starts, length - side]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(4,)`` boxes ``(x0, y0, x1, y1)``."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def _drop_duplicates(faces: list[FaceLandmarks]) -> list[FaceLandmarks]:
    """Keep one face per group of overlapping landmark boxes (the highest-scoring one)."""
    kept: list[FaceLandmarks] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(_iou(face.bbox, other.bbox) <= _FACE_OVERLAP_IOU for other in kept):
            kept.append(face)
    return kept


_default_detector: LandmarkDetector | None = None
_default_lock = threading.Lock()


def default_detector() -> LandmarkDetector:
    """The shared detector with default settings, built on first use (and again if closed)."""
    global _default_detector
    with _default_lock:
        if _default_detector is None or _default_detector.closed:
            _default_detector = LandmarkDetector()
        return _default_detector


def size_rank(index: int) -> str:
    """A face's place by size in words: 0 -> "the largest", 1 -> "the 2nd largest", ..."""
    if index == 0:
        return "the largest"
    number = index + 1
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"the {number}{suffix} largest"


@dataclass(frozen=True, eq=False)
class ChosenFace:
    """One face of a photo and its place among the faces found there.

    Attributes:
        landmarks: the face's :class:`FaceLandmarks`, in the photo's pixels.
        index: its place by size, 0 = the largest.
        found: how many faces the photo has (at most the detector's ``max_num_faces``).
    """

    landmarks: FaceLandmarks
    index: int
    found: int

    def describe(self) -> str:
        """Which face, in words, e.g. "the 2nd largest of 3 faces (x 412-530, y 80-231 px)"."""
        x0, y0, x1, y1 = (round(float(v)) for v in self.landmarks.bbox)
        faces = "face" if self.found == 1 else "faces"
        return f"{size_rank(self.index)} of {self.found} {faces} (x {x0}-{x1}, y {y0}-{y1} px)"

    def summary(self) -> dict[str, Any]:
        """JSON-ready: ``index``, ``faces_found``, ``box_px`` (x0, y0, x1, y1) and ``which``
        (:meth:`describe`)."""
        return {
            "which": self.describe(),
            "index": self.index,
            "faces_found": self.found,
            "box_px": [round(float(v), 1) for v in self.landmarks.bbox],
        }


def choose_face(
    image: np.ndarray, index: int = 0, detector: LandmarkDetector | None = None
) -> ChosenFace:
    """The ``index``-th largest face in an image, and how many faces it has.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        index: ``0`` for the largest face, ``1`` for the next, and so on.
        detector: Detector to use; defaults to :func:`default_detector`.

    Raises:
        NoFaceError: No face was found.
        ValueError: ``index`` is negative or not below the number of faces found, or ``image``
            is not an ``(H, W, 3)`` uint8 array.
    """
    if index < 0:
        raise ValueError(f"face index must be 0 or more, got {index}")
    detector = detector if detector is not None else default_detector()
    faces = detector.detect(image)
    if not faces:
        height, width = image.shape[:2]
        raise NoFaceError(
            f"No face was found in the {width}x{height} photo. Try a photo in which the face "
            "is upright (turn a photo that lies on its side), frontal, well lit, not cut off "
            "by the border and not mostly hidden (with both the eyes and the mouth covered, or "
            "two thirds of the face, the detector rarely finds it), and larger if it is small "
            "(a few hundred pixels across is best). A manual mask does not help here: the face "
            "has to be found before any mask is used."
        )
    if index >= len(faces):
        plural = "face was" if len(faces) == 1 else "faces were"
        raise ValueError(
            f"face index {index} was asked for, but only {len(faces)} {plural} found "
            f"(valid indices: 0..{len(faces) - 1}, largest face first)"
        )
    return ChosenFace(faces[index], index, len(faces))


def detect_face(
    image: np.ndarray, index: int = 0, detector: LandmarkDetector | None = None
) -> FaceLandmarks:
    """Landmarks of the ``index``-th largest face in an image (see :func:`choose_face`,
    which also says how many faces there are).

    Raises:
        NoFaceError: No face was found.
        ValueError: ``index`` is negative or not below the number of faces found, or ``image``
            is not an ``(H, W, 3)`` uint8 array.
    """
    return choose_face(image, index, detector).landmarks
