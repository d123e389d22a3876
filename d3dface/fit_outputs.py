"""Files written for one fit: ``fit.ply``, ``fit.glb``, ``overlay.png`` and ``fit.json``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from d3dface.facemodel.model import FaceModel
from d3dface.fitting import FitResult
from d3dface.meshio import export_mesh
from d3dface.overlay import draw_overlay, head_faces
from d3dface.visibility import VISIBILITY_NAMES, visibility_colours

__all__ = ["FIT_FILES", "fit_summary", "write_fit_outputs"]

FIT_FILES = ("fit.ply", "fit.glb", "overlay.png", "fit.json")
"""The files :func:`write_fit_outputs` writes: the mesh twice, the overlay, the summary."""


def fit_summary(fit: FitResult, model: FaceModel) -> dict:
    """JSON-ready numbers of a fit: errors, visibility counts, timings, pose, coefficients."""
    classes = np.bincount(fit.visibility, minlength=len(VISIBILITY_NAMES))
    visible_errors = fit.landmark_errors_px[fit.landmark_visible]
    camera = fit.camera
    return {
        "landmark_error_px": round(fit.landmark_error_px, 3),
        "landmark_error_median_px": round(float(np.median(visible_errors)), 3),
        "visible_landmarks": int(fit.landmark_visible.sum()),
        "visible_vertex_fraction": round(fit.visible_fraction, 4),
        "vertex_classes": {
            name: int(count) for name, count in zip(VISIBILITY_NAMES, classes, strict=True)
        },
        "timings_s": fit.timings,
        "losses": {name: round(value, 6) for name, value in fit.losses.items()},
        "settings": asdict(fit.settings),
        "camera": {
            "fx": float(camera.fx),
            "fy": float(camera.fy),
            "cx": float(camera.cx),
            "cy": float(camera.cy),
            "image_size": list(camera.image_size),
        },
        "pose": {
            "rotation": np.round(fit.rotation.numpy(), 6).tolist(),
            "translation_m": np.round(fit.translation.numpy(), 6).tolist(),
        },
        "coefficients": {
            "identity": np.round(fit.identity.numpy(), 5).tolist(),
            "expression": {
                name: round(float(weight), 5)
                for name, weight in zip(model.expression_names, fit.expression, strict=True)
            },
            "local": np.round(fit.local.numpy(), 5).tolist(),
            "local_regions": model.region_names,
        },
        "mesh": "model space, metres, +y up, +z out of the face; vertex colours = visibility "
        "class (grey visible, red occluded, blue-grey self-hidden)",
    }


def write_fit_outputs(
    fit: FitResult, model: FaceModel, photo: np.ndarray, out_dir: str | Path, extra: dict
) -> dict:
    """Write the mesh (PLY, GLB), the overlay (the head, see :func:`head_faces`) and
    ``fit.json`` into ``out_dir``.

    Args:
        fit: the fit. model: the model it was made with. photo: (H, W, 3) uint8, the photo.
        out_dir: created if missing. extra: more entries for ``fit.json`` (e.g. input paths).

    Returns:
        The dictionary written to ``fit.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ply_name, glb_name, overlay_name, summary_name = FIT_FILES
    vertices, faces = fit.vertices.numpy(), model.faces.numpy()
    colours = visibility_colours(fit.visibility)
    export_mesh(out_dir / ply_name, vertices, faces, colours)
    export_mesh(out_dir / glb_name, vertices, faces, colours)
    overlay = draw_overlay(photo, fit, head_faces(model))
    Image.fromarray(overlay).save(out_dir / overlay_name)
    summary = {**extra, **fit_summary(fit, model), "files": list(FIT_FILES)}
    (out_dir / summary_name).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
