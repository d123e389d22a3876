"""An occlusion mask drawn over its photo: hidden pixels tinted, the face's outline traced."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["draw_mask_overlay"]

_HIDDEN_RGB = np.array([235.0, 40.0, 30.0])
_OUTLINE_RGB = (255, 220, 0)


def draw_mask_overlay(
    photo: np.ndarray,
    mask: np.ndarray,
    face_region: np.ndarray | None = None,
    alpha: float = 0.55,
) -> np.ndarray:
    """Tint the hidden pixels red and trace the face region's outline in yellow.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool, True = hidden.
        face_region: ``(H, W)`` bool face footprint to outline, or None.
        alpha: opacity of the tint.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if mask.shape != photo.shape[:2]:
        raise ValueError(f"mask {mask.shape} and photo {photo.shape[:2]} differ in size")
    result = photo.copy()
    tinted = (1.0 - alpha) * photo[mask].astype(np.float64) + alpha * _HIDDEN_RGB
    result[mask] = np.round(tinted).astype(np.uint8)
    if face_region is not None and face_region.any():
        contours, _ = cv2.findContours(
            face_region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        thickness = max(round(max(photo.shape[:2]) / 500), 1)
        cv2.drawContours(result, contours, -1, _OUTLINE_RGB, thickness, lineType=cv2.LINE_AA)
    return result
