"""Reconstruct one photo or a folder of photos, one output folder each (the ``reconstruct``
command). A file that fails (not an image, no face, ...) is reported and skipped; the others
still run."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from d3dface.pipeline import Diverse3DFace
from d3dface.result_files import (
    METRICS_NAME,
    RESULT_MARKERS,
    RESULT_PICTURES,
    check_inputs_kept,
)

__all__ = ["BatchInputs", "BatchItem", "list_inputs", "reconstruct_all"]

IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg")
MASK_STEM_ENDING = "_mask"


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch: its path, optional mask path and output folder."""

    image: Path
    mask: Path | None
    out_dir: Path


@dataclass(frozen=True)
class BatchInputs:
    """What a ``reconstruct`` run will do: the photos, and the files of a folder it leaves
    alone with the reason for each (``"name: reason"``), to tell the user."""

    items: list[BatchItem]
    ignored: list[str]


def list_inputs(source: Path, mask: Path | None, out_dir: Path) -> BatchInputs:
    """The photos to reconstruct.

    ``source`` is a photo or a folder. In a folder, the visible files with an image suffix
    (:data:`IMAGE_SUFFIXES`) are the photos, sorted; one that is not really an image fails
    later, on its own. ``mask`` is the photo's mask file, or for a folder a folder of masks
    named after the photos: ``a.jpg``'s mask is ``a_mask.png`` (any image suffix), or in a
    mask folder that is not the photos' own folder ``a.png``; where ``a.jpg`` and ``a.png``
    are both photos, ``a_jpg_mask.png`` names the mask of ``a.jpg`` alone. So the masks may
    lie among the photos, and no photo is ever taken for another's mask. Photos without one
    get the automatic mask. A file named as a photo's mask (``a_mask.png`` beside ``a.jpg``)
    is not a photo; one left unused is listed in ``ignored`` with how to use it. Nor are the
    files of an earlier result written into the folder (those its ``metrics.json``,
    ``fit.json`` or ``mask.json`` lists, :data:`~d3dface.result_files.RESULT_MARKERS`; one
    line of ``ignored`` for each summary), nor photos in its subfolders; subfolders holding
    photos are listed in ``ignored``.

    Each photo writes into ``out_dir / <photo name without suffix>`` (``out_dir`` itself for
    a single photo); photos that share a name up to the suffix (``a.jpg``, ``a.png``) keep it
    (``a_jpg``, ``a_png``), so none replaces another's files.

    Raises:
        FileNotFoundError: ``source`` or ``mask`` does not exist.
        ValueError: a folder holds no photos, a folder of photos is given a mask file, a
            photo's output folder is taken by a file or by another photo's results
            (``a_jpg.png`` beside ``a.jpg`` and ``a.png``), or a photo or mask would be
            replaced by a picture of the results (``--out`` holding a photo ``overlay.png``).
    """
    if not source.exists():
        raise FileNotFoundError(f"'{source}' does not exist; give a photo or a folder of photos")
    if mask is not None and not mask.exists():
        raise FileNotFoundError(f"mask '{mask}' does not exist; check the path")
    if source.is_file():
        if mask is not None and mask.is_dir():
            raise ValueError(f"'{source}' is one photo: give its mask file, not a folder")
        return _checked(BatchInputs([BatchItem(source, mask, out_dir)], []))
    if mask is not None and not mask.is_dir():
        raise ValueError(
            f"'{source}' is a folder: --mask must be a folder of masks named after the photos "
            "(a.jpg -> a_mask.png or a.png)"
        )
    visible = sorted(p for p in source.iterdir() if not p.name.startswith("."))
    earlier = _earlier_result_files(source)
    files = [p for p in visible if p.is_file() and p.name not in earlier]
    ignored = [
        f"{_names(names)}: written by an earlier run (listed in its {marker})"
        for marker in RESULT_MARKERS
        if (names := [name for name, listing in earlier.items() if listing == marker])
    ]
    ignored += [
        f"{p.name}: not a photo (its suffix is none of {', '.join(IMAGE_SUFFIXES)})"
        for p in files
        if p.suffix.lower() not in IMAGE_SUFFIXES
    ]
    subfolders = [p.name for p in visible if p.is_dir() and _holds_photos(p)]
    ignored += [
        f"{name}/: a folder; photos in folders inside the photos folder are not read (give "
        f"{source / name} to reconstruct its photos)"
        for name in subfolders
    ]
    candidates = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    owners = {p: _photo_named_by_mask(p, candidates) for p in candidates}
    stems = Counter(p.stem for p in candidates if owners[p] is None)
    own_folder = mask is not None and mask.resolve() == source.resolve()
    mask_files = {} if mask is None else _image_files(mask)
    masks = {
        p: _mask_for(p, mask_files, stems[p.stem] > 1, own_folder)
        for p in candidates
        if owners[p] is None
    }
    used_as_masks = {found.resolve() for found in masks.values() if found is not None}
    photos = list(masks)
    for p, owner in owners.items():
        if owner is None or p.resolve() in used_as_masks:
            continue
        if masks.get(owner) is None:  # the owner may itself be named as a mask
            ignored.append(
                f"{p.name}: named as the mask of {owner.name} but not used; give the folder "
                f"that holds it as --mask ({source}) to use it"
            )
        else:
            ignored.append(f"{p.name}: named as a mask; {owner.name}'s is {masks[owner]}")
    if not photos:
        raise ValueError(_no_photos_message(source, subfolders, earlier))
    items = [BatchItem(p, masks[p], out_dir / _folder_name(p, stems[p.stem] > 1)) for p in photos]
    folders = Counter(item.out_dir for item in items)
    for item in items:
        if folders[item.out_dir] > 1:
            sharing = [other.image.name for other in items if other.out_dir == item.out_dir]
            raise ValueError(
                f"{' and '.join(sharing)} would both write into '{item.out_dir}'; rename one"
            )
        if item.out_dir.exists() and not item.out_dir.is_dir():
            raise ValueError(
                f"'{item.out_dir}' is a file, but {item.image.name}'s results go into a folder "
                "of that name; move the file or choose another --out"
            )
    return _checked(BatchInputs(items, ignored))


def _no_photos_message(source: Path, subfolders: list[str], earlier: dict[str, str]) -> str:
    """Why folder ``source`` gives no photos: none there, photos only in ``subfolders``, or
    only the files of an earlier result (``earlier``: file name -> the summary listing it)."""
    message = f"folder '{source}' holds no photos (files ending in {', '.join(IMAGE_SUFFIXES)})"
    if subfolders:
        message += f"; photos in its folders ({', '.join(subfolders)}) are not read"
    pictures = [name for name in earlier if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    if pictures:
        summaries = ", ".join(sorted({earlier[name] for name in pictures}))
        message += (
            f"; its pictures ({_names(pictures)}) are an earlier run's results, listed in "
            f"its {summaries}: give the photo that run read, or its folder"
        )
    return message


def _checked(inputs: BatchInputs) -> BatchInputs:
    """``inputs``, once no photo or mask of it is found to be a picture its results replace
    (:func:`~d3dface.result_files.check_inputs_kept`)."""
    for item in inputs.items:
        check_inputs_kept(item.out_dir, RESULT_PICTURES, {"photo": item.image, "mask": item.mask})
    return inputs


def _earlier_result_files(folder: Path) -> dict[str, str]:
    """The files in ``folder`` of an earlier result written there (its pictures, meshes and
    summary), by name, each with the summary that lists it (``{"overlay.png":
    "metrics.json"}``); a summary that cannot be read names none."""
    found: dict[str, str] = {}
    for marker in RESULT_MARKERS:
        try:
            listed = json.loads((folder / marker).read_text()).get("files")
        except (OSError, ValueError, AttributeError):
            continue
        for name in listed if isinstance(listed, list) else []:
            if isinstance(name, str) and "/" not in name and (folder / name).is_file():
                found.setdefault(name, marker)
    return found


def _names(names: list[str], shown: int = 6) -> str:
    """File names for a message, the first ``shown`` of them and how many more."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _holds_photos(folder: Path) -> bool:
    """True when ``folder`` holds a file with an image suffix and no earlier result (a
    subfolder written by a folder run is not a folder of photos)."""
    if any((folder / marker).is_file() for marker in RESULT_MARKERS):
        return False
    return any(path.suffix.lower() in IMAGE_SUFFIXES for path in folder.iterdir())


def _folder_name(photo: Path, stem_shared: bool) -> str:
    """The output folder's name of ``photo`` in a batch: its stem, with its suffix when
    another photo shares the stem."""
    return f"{photo.stem}_{photo.suffix.lstrip('.')}" if stem_shared else photo.stem


def _image_files(folder: Path) -> dict[tuple[str, str], Path]:
    """The files of ``folder`` with an image suffix, by stem and lower-case suffix
    (``a_mask.PNG`` -> ``("a_mask", ".png")``); of names that differ only in the suffix's
    case, the first by name."""
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES and path.is_file():
            found.setdefault((path.stem, suffix), path)
    return found


def _mask_for(
    photo: Path, mask_files: dict[tuple[str, str], Path], stem_shared: bool, own_folder: bool
) -> Path | None:
    """The mask of ``photo`` among ``mask_files`` (:func:`_image_files` of the mask folder;
    any image suffix, in any case): ``<folder name>_mask.*`` where another photo shares the
    stem (``a_jpg_mask.png``), else ``<stem>_mask.*``, else, unless the mask folder is the
    photos' own folder, ``<stem>.*``; None if absent."""
    stems = [f"{photo.stem}{MASK_STEM_ENDING}"]
    if stem_shared:
        stems.insert(0, f"{_folder_name(photo, True)}{MASK_STEM_ENDING}")
    if not own_folder:
        stems.append(photo.stem)
    for stem in stems:
        for suffix in IMAGE_SUFFIXES:
            found = mask_files.get((stem, suffix))
            if found is not None:
                return found
    return None


def _photo_named_by_mask(path: Path, files: list[Path]) -> Path | None:
    """The file among ``files`` whose mask ``path``'s name says it is (``a_mask.png`` ->
    ``a.*``; ``a_jpg_mask.png`` -> ``a.jpg``), or None."""
    if not path.stem.endswith(MASK_STEM_ENDING):
        return None
    owner_name = path.stem[: -len(MASK_STEM_ENDING)]
    return next(
        (
            p
            for p in files
            if p != path and owner_name in (p.stem, _folder_name(p, stem_shared=True))
        ),
        None,
    )


def reconstruct_all(
    pipeline: Diverse3DFace,
    items: list[BatchItem],
    options: dict[str, Any],
    formats: Sequence[str],
    show_progress: bool = True,
    summary_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the pipeline on every item and write its files; failures are collected.

    Args:
        pipeline: the loaded pipeline.
        items: :attr:`BatchInputs.items` of :func:`list_inputs`.
        options: keyword arguments of :meth:`Diverse3DFace.__call__` (n, k, n_sigma, seed,
            iterations, face_index, mask_method).
        formats: mesh formats of the samples (see
            :func:`d3dface.result_files.mesh_suffixes`).
        show_progress: draw a progress bar over photos and stages (on stderr).
        summary_dir: for a folder of photos, the common output folder: each photo that fails
            is reported on stderr as it fails (progress bar or not), and ``summary.json`` is
            written there, however many photos the folder held. None for one photo given
            alone: its failure is left to the caller.

    Returns:
        ``{"done": [{"image", "out_dir", "metrics", "n_samples", "mask_source", "mask_notes",
        "face", "seconds"}...], "failed": [{"image", "error"}...]}`` ("face": see
        :meth:`~d3dface.perception.landmarks.ChosenFace.summary`), also written as
        ``summary_dir / "summary.json"`` when ``summary_dir`` is given.
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
            error = str(err)
            if (item.out_dir / METRICS_NAME).is_file():
                error += f" ('{item.out_dir}' still holds an earlier run's results)"
            failed.append({"image": str(item.image), "error": error})
            if summary_dir is not None:
                message = f"error: {item.image}: {error} (skipped; the others go on)"
                bar.write(message, file=sys.stderr)
        else:
            done.append(
                {
                    "image": str(item.image),
                    "out_dir": str(item.out_dir),
                    "metrics": result.metrics,
                    "n_samples": result.n_samples,
                    "mask_source": result.mask_source,
                    "mask_notes": list(result.mask_notes),
                    "face": result.face.summary(),
                    "seconds": result.timings["total"],
                }
            )
        bar.update(1)
    bar.close()
    summary = {"done": done, "failed": failed}
    if summary_dir is not None:
        summary_dir.mkdir(parents=True, exist_ok=True)
        (summary_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
