"""Reconstruct one photo or a folder of photos, one output folder each (the ``reconstruct``
command). A file that fails (not an image, no face, ...) is reported and skipped; the others
still run."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from d3dface.pipeline import Diverse3DFace

__all__ = ["BatchItem", "list_inputs", "reconstruct_all"]

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg")


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch: its path, optional mask path and output folder."""

    image: Path
    mask: Path | None
    out_dir: Path


def list_inputs(source: Path, mask: Path | None, out_dir: Path) -> list[BatchItem]:
    """The photos to reconstruct.

    ``source`` is a photo or a folder (every visible file in it, sorted; files that are not
    images fail later, one by one). ``mask`` is the photo's mask file, or for a folder a
    folder of masks named like the photos (``photo.jpg`` -> ``photo.png``); photos without one
    get the automatic mask. Each photo writes into ``out_dir / <photo name without suffix>``
    (``out_dir`` itself for a single photo); photos that share a name up to the suffix
    (``a.jpg``, ``a.png``) keep it (``a_jpg``, ``a_png``), so none replaces another's files.

    Raises:
        FileNotFoundError: ``source`` or ``mask`` does not exist.
        ValueError: a folder holds no files, or a folder of photos is given a mask file.
    """
    if not source.exists():
        raise FileNotFoundError(f"'{source}' does not exist; give a photo or a folder of photos")
    if mask is not None and not mask.exists():
        raise FileNotFoundError(f"mask '{mask}' does not exist")
    if source.is_file():
        if mask is not None and mask.is_dir():
            raise ValueError(f"'{source}' is one photo: give its mask file, not a folder")
        return [BatchItem(source, mask, out_dir)]
    if mask is not None and not mask.is_dir():
        raise ValueError(
            f"'{source}' is a folder: --mask must be a folder of masks named like the photos"
        )
    photos = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    if not photos:
        raise ValueError(f"folder '{source}' holds no files")
    stems = Counter(p.stem for p in photos)
    return [
        BatchItem(p, _mask_for(p, mask), out_dir / _folder_name(p, stems[p.stem] > 1))
        for p in photos
    ]


def _folder_name(photo: Path, stem_shared: bool) -> str:
    """The output folder's name of ``photo`` in a batch: its stem, with its suffix when
    another photo shares the stem."""
    return f"{photo.stem}_{photo.suffix.lstrip('.')}" if stem_shared else photo.stem


def _mask_for(photo: Path, mask_dir: Path | None) -> Path | None:
    """The mask of ``photo`` in ``mask_dir``: same stem, any image suffix; None if absent."""
    if mask_dir is None:
        return None
    for suffix in MASK_SUFFIXES:
        candidate = mask_dir / f"{photo.stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def reconstruct_all(
    pipeline: Diverse3DFace,
    items: list[BatchItem],
    options: dict[str, Any],
    formats: tuple[str, ...],
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the pipeline on every item and write its files; failures are collected.

    Args:
        pipeline: the loaded pipeline.
        items: from :func:`list_inputs`.
        options: keyword arguments of :meth:`Diverse3DFace.__call__` (n, k, n_sigma, seed,
            iterations, face_index, mask_method).
        formats: mesh formats of the samples.
        show_progress: draw a progress bar over photos and stages (on stderr).

    Returns:
        ``{"done": [{"image", "out_dir", "metrics", "seconds"}...], "failed": [{"image",
        "error"}...]}``, also written as ``summary.json`` in the common output folder when
        there are several photos.
    """
    done: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    bar = tqdm(total=len(items), unit="photo", disable=not show_progress, dynamic_ncols=True)
    for item in items:
        bar.set_description(item.image.name[:30])

        def stage(fraction: float, text: str) -> None:
            bar.set_postfix_str(f"{text} ({100 * fraction:.0f}%)")

        try:
            result = pipeline(item.image, mask=item.mask, progress=stage, **options)
            result.save(item.out_dir, formats)
        except (ValueError, OSError, RuntimeError) as err:
            failed.append({"image": str(item.image), "error": str(err)})
            bar.write(f"skipped {item.image}: {err}")
        else:
            done.append(
                {
                    "image": str(item.image),
                    "out_dir": str(item.out_dir),
                    "metrics": result.metrics,
                    "seconds": result.timings["total"],
                }
            )
        bar.update(1)
    bar.close()
    summary = {"done": done, "failed": failed}
    if len(items) > 1:
        common = items[0].out_dir.parent
        common.mkdir(parents=True, exist_ok=True)
        (common / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
