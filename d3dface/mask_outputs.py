"""Files written for one occlusion mask (the ``mask`` command): ``mask.png``, ``overlay.png``
and ``mask.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from d3dface.perception.mask_overlay import draw_mask_overlay
from d3dface.perception.working_size import width_height

if TYPE_CHECKING:
    from d3dface.perception.occlusion import OcclusionResult

__all__ = ["MASK_FILES", "mask_summary", "write_mask_outputs"]

MASK_FILES = ("mask.png", "overlay.png", "mask.json")
"""The files :func:`write_mask_outputs` writes: the mask (white = hidden), the photo with the
mask drawn over it, the summary."""


def mask_summary(found: OcclusionResult) -> dict:
    """JSON-ready figures of a mask: its source and notes, the share of the face it hides, the
    landmarks it hides, the photo's size and the timings."""
    return {
        "mask_source": found.source,
        "mask_notes": list(found.notes),
        "hidden_face_fraction": round(found.hidden_fraction, 4),
        "hidden_landmarks": int((~found.landmark_visible).sum()),
        "landmark_count": len(found.landmark_visible),
        "photo_size_px": width_height(found.mask.shape),
        "timings_s": found.timings,
    }


def write_mask_outputs(
    found: OcclusionResult, photo: np.ndarray, out_dir: str | Path, extra: dict
) -> dict:
    """Write the mask (white = hidden), the overlay (the hidden pixels tinted red, the face's
    outline traced) and ``mask.json`` into ``out_dir``.

    Args:
        found: the mask of one face of ``photo``. photo: ``(H, W, 3)`` uint8 RGB, the photo.
        out_dir: created if missing. extra: more entries for ``mask.json`` (e.g. input paths).

    Returns:
        The dictionary written to ``mask.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_name, overlay_name, summary_name = MASK_FILES
    Image.fromarray(found.mask).convert("L").save(out_dir / mask_name)
    overlay = draw_mask_overlay(photo, found.mask, found.face_region)
    Image.fromarray(overlay).save(out_dir / overlay_name)
    summary = {**extra, **mask_summary(found), "files": list(MASK_FILES)}
    (out_dir / summary_name).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
