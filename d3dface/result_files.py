"""Files of one reconstruction: meshes of every sample, pictures and ``metrics.json``.

Written into one folder:

- ``sample_XX.glb`` / ``.ply`` / ``.obj`` (the formats asked for): each completion, model
  space, metres, +y up, coloured with the fit's colours (its albedo, the scalp skin-toned);
- ``fit.ply``: the stage-1 mesh, coloured by visibility (grey visible, red occluded,
  blue-grey self-hidden);
- ``spread.glb``: the samples' mean mesh coloured by per-vertex spread;
- ``mask.png`` (white = hidden, at the given photo's size), ``overlay.png`` (the fit over the
  photo as worked on, :attr:`~d3dface.pipeline.FaceResult.photo`),
  ``grid.png`` (shaded renders of every sample), ``spread.png`` (the spread heat map);
- ``metrics.json``: ASD-V, ASD-O, ratio, timings, settings, vertex counts, file list;
- ``latents.safetensors``: the samples' latent codes, from which the ``interpolate`` command
  decodes blends (:mod:`d3dface.latents_file`).

Writing into a folder that holds an earlier result replaces it whole: sample and blend meshes
that the new result does not write (higher numbers, other formats, blends of the old samples)
are removed, so that the folder never mixes two runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from torch import Tensor

from d3dface.figures import head_part, heat_colours, sample_grid, spread_image
from d3dface.fit_outputs import FIT_FILES
from d3dface.latents_file import BLEND_STEM, LATENTS_NAME, save_latents
from d3dface.mask_outputs import MASK_FILES
from d3dface.meshio import MESH_FORMATS, export_mesh
from d3dface.out_folder import check_out_folder
from d3dface.overlay import draw_overlay
from d3dface.perception.working_size import mask_to_size, width_height
from d3dface.visibility import VISIBILITY_NAMES, visibility_colours

if TYPE_CHECKING:
    from d3dface.pipeline import FaceResult

__all__ = [
    "DEFAULT_MESH_FORMATS",
    "METRICS_NAME",
    "RESULT_MARKERS",
    "RESULT_PICTURES",
    "check_inputs_kept",
    "mesh_suffixes",
    "result_summary",
    "sample_mesh_path",
    "write_result",
]

DEFAULT_MESH_FORMATS = ("glb", "ply")
"""The sample meshes' formats when none are named."""

RESULT_PICTURES = ("mask.png", "overlay.png", "grid.png", "spread.png")
"""The pictures :func:`write_result` writes into a result folder."""

METRICS_NAME = "metrics.json"
"""The summary :func:`write_result` writes beside a result's files."""

RESULT_MARKERS = (METRICS_NAME, FIT_FILES[-1], MASK_FILES[-1])
"""The summaries a ``reconstruct`` (:func:`write_result`), ``fit`` or ``mask`` run writes
beside its files (``metrics.json``, ``fit.json``, ``mask.json``), each listing them under
``"files"``: how a folder holding an earlier result is known."""

_SAMPLE_STEM = re.compile(r"sample_\d+")
"""Stems of the sample meshes :func:`write_result` writes (:func:`sample_mesh_path`)."""


def sample_mesh_path(out_dir: Path, index: int, suffix: str) -> Path:
    """Where :func:`write_result` puts sample ``index``'s mesh of format ``suffix`` (".glb")."""
    return out_dir / f"sample_{index:02d}{suffix}"


def mesh_suffixes(formats: str | Sequence[str] | None) -> list[str]:
    """The file suffixes of mesh formats: ``"glb,ply"`` or ``("glb", ".PLY")`` -> ``[".glb",
    ".ply"]``; None -> those of :data:`DEFAULT_MESH_FORMATS`.

    Raises:
        ValueError: a format is unknown, or none is named.
    """
    if formats is None:
        formats = DEFAULT_MESH_FORMATS
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    suffixes = [f".{name.strip().lower().lstrip('.')}" for name in names if name.strip()]
    unknown = [suffix for suffix in suffixes if suffix not in MESH_FORMATS]
    if unknown:
        raise ValueError(f"unknown mesh format(s) {unknown}; choose from {MESH_FORMATS}")
    if not suffixes:
        raise ValueError(f"no mesh format given; choose one or more of {MESH_FORMATS}")
    return list(dict.fromkeys(suffixes))


def result_summary(result: FaceResult) -> dict:
    """JSON-ready figures of a result: metrics, timings, settings, vertex classes."""
    classes = np.bincount(result.fit.visibility, minlength=len(VISIBILITY_NAMES))
    return {
        "metrics": {name: round(value, 4) for name, value in result.metrics.items()},
        "timings_s": result.timings,
        "settings": asdict(result.settings),
        "fit_iterations": result.fit.settings.iterations,
        "mask_source": result.mask_source,
        "mask_notes": list(result.mask_notes),
        "face": result.face.summary(),
        "occluded_pixel_fraction": round(float(result.mask.mean()), 4),
        "photo_size_px": width_height(result.photo_size),
        "working_size_px": width_height(result.photo.shape[:2]),
        "vertex_classes": {
            name: int(count) for name, count in zip(VISIBILITY_NAMES, classes, strict=True)
        },
        "spread_mm": {
            "max": round(float(result.spread_mm.max()), 4),
            "mean_occluded": _mean_over(result.spread_mm, result.target.occluded),
            "mean_visible": _mean_over(result.spread_mm, result.target.visible),
        },
        "landmark_error_px": round(result.fit.landmark_error_px, 3),
        "meshes": "model space, metres, +y up, +z out of the face",
    }


def check_inputs_kept(
    out_dir: Path, written: Sequence[str], inputs: dict[str, Path | None]
) -> None:
    """Refuse a run that would write over one of its own inputs (a photo named
    ``overlay.png`` in the ``--out`` folder, a mask ``mask.png`` there).

    Args:
        out_dir: the folder the run writes into. written: the names it writes there.
        inputs: the inputs by what they are ("photo", "mask"); None where not given.

    Raises:
        ValueError: an input is one of the files the run writes.
    """
    targets = {(out_dir / name).resolve(): name for name in written}
    for role, path in inputs.items():
        name = None if path is None else targets.get(path.resolve())
        if name is not None:
            raise ValueError(
                f"the {role} '{path}' would be replaced by the {name} this run writes into "
                f"'{out_dir}'; choose another --out (or rename the {role})"
            )


def _remove_earlier_meshes(out_dir: Path) -> None:
    """Delete the sample and blend meshes of an earlier result in ``out_dir`` (files named
    like ours)."""
    for path in out_dir.iterdir():
        is_mesh = path.suffix.lower() in MESH_FORMATS
        ours = _SAMPLE_STEM.fullmatch(path.stem) or BLEND_STEM.fullmatch(path.stem)
        if is_mesh and path.is_file() and ours:
            path.unlink()


def _check_finite(result: FaceResult) -> None:
    """Raise ValueError when the samples, the fit or its colours hold NaN or infinite values."""
    parts = {
        "samples": result.samples,
        "fitted mesh": result.fit.vertices,
        "colours": result.fit.colours,
    }
    broken = [name for name, values in parts.items() if not bool(values.isfinite().all())]
    if broken:
        raise ValueError(
            f"the reconstruction's {' and '.join(broken)} hold NaN or infinite values, so no "
            "file was written; the weights may be damaged: load them again "
            "(Diverse3DFace.from_pretrained) or try another photo"
        )


def _mean_over(values: Tensor, where: Tensor) -> float | None:
    """Mean of a (V,) tensor over a (V,) bool tensor, rounded; None when empty."""
    return round(float(values[where].mean()), 4) if bool(where.any()) else None


def write_result(
    result: FaceResult, out_dir: str | Path, formats: str | Sequence[str] | None = None
) -> list[Path]:
    """Write every file of ``result`` into ``out_dir`` (created); returns the paths.

    ``formats``: the sample meshes' formats (see :func:`mesh_suffixes`).

    Raises:
        ValueError: an unknown format, a result holding NaN or infinite values, or an
            ``out_dir`` that cannot be written (:func:`~d3dface.out_folder.check_out_folder`);
            then nothing is written.
    """
    suffixes = mesh_suffixes(formats)
    _check_finite(result)
    out_dir = check_out_folder(out_dir, "out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_earlier_meshes(out_dir)
    faces = result.faces.numpy()
    colours = result.fit.colours.numpy()
    paths = [
        export_mesh(sample_mesh_path(out_dir, index, suffix), vertices, faces, colours)
        for index, vertices in enumerate(result.samples.numpy())
        for suffix in suffixes
    ]
    paths.append(
        export_mesh(
            out_dir / "fit.ply",
            result.fit.vertices.numpy(),
            faces,
            visibility_colours(result.fit.visibility),
        )
    )
    spread = result.spread_mm.numpy()
    vmax = max(float(np.percentile(spread, 99)), 0.1)
    paths.append(
        export_mesh(
            out_dir / "spread.glb",
            result.samples.mean(0).numpy(),
            faces,
            heat_colours(spread, vmax),
        )
    )
    keep, head_faces = head_part(result.head_faces, result.samples.shape[1])
    heads = result.samples[:, keep]
    pictures = (
        mask_to_size(result.mask, result.photo_size).astype(np.uint8) * 255,
        draw_overlay(result.photo, result.fit, result.head_faces),
        sample_grid(heads, head_faces),
        spread_image(heads.mean(0), result.spread_mm[keep], head_faces),
    )
    for name, picture in zip(RESULT_PICTURES, pictures, strict=True):
        path = out_dir / name
        Image.fromarray(picture).save(path)
        paths.append(path)
    paths.append(save_latents(result, out_dir / LATENTS_NAME))
    summary = {**result_summary(result), "files": [path.name for path in paths]}
    summary["files"].append(METRICS_NAME)
    metrics_path = out_dir / METRICS_NAME
    metrics_path.write_text(json.dumps(summary, indent=2) + "\n")
    paths.append(metrics_path)
    return paths
