"""Ordered outlines of face parts in MediaPipe's 478-landmark face mesh.

Each constant lists landmark indices in order around a closed outline, so that
``points[OUTLINE]`` is a polygon (``(K, 2)``) ready for ``cv2.fillPoly``. "Left" and "right"
are the subject's: the subject's right eye is on the image's left in a frontal photo. The
outlines are chained from MediaPipe's ``face_mesh_connections`` (eyes: lid margins; brows:
upper edge then lower edge; lips: outer edge; face oval: hairline to chin).
"""

from __future__ import annotations

__all__ = [
    "FACE_OVAL",
    "LEFT_BROW",
    "LEFT_EYE",
    "LIPS_OUTER",
    "RIGHT_BROW",
    "RIGHT_EYE",
]

RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
"""Subject's right eye, lid margin; 33 outer corner, 133 inner corner."""

LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
"""Subject's left eye, lid margin; 263 outer corner, 362 inner corner."""

RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
"""Subject's right eyebrow: upper edge outer to inner, then lower edge back."""

LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
"""Subject's left eyebrow: upper edge outer to inner, then lower edge back."""

LIPS_OUTER = (
    *(61, 146, 91, 181, 84, 17, 314, 405, 321, 375),
    *(291, 409, 270, 269, 267, 0, 37, 39, 40, 185),
)
"""Outer edge of the lips; 61 and 291 are the mouth corners, 0 / 17 the middle top / bottom."""

FACE_OVAL = (
    *(10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377),
    *(152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109),
)
"""The face's outline: 10 top of the forehead, 152 chin, 234 / 454 right / left cheek edge."""
