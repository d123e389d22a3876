"""``python -m d3dface.bench occlusion [--quick]``: automatic occlusion masks against drawn truth.

Images: the shared test photos (``../shared/test_images``: astronaut, biden, obama), each as
is, mirrored, cropped around the face and colour-jittered, and renders of the face model
(:mod:`d3dface.bench.synthetic`, seeds from 90000 up, apart from the seeds the segmentation's
settings were chosen on: renders 70000+ and occluder seeds 0-1). Onto each, occluders of every
kind in :data:`d3dface.bench.occluders.OCCLUDER_KINDS` are drawn at random sizes and positions
(their own seed stream), so the true mask is known; then
:func:`d3dface.perception.occlusion.segment_occlusion` runs on the occluded image from scratch
(landmark detection included), as it would for a user.

Scoring. The photos' faces may already be partly hidden in reality (hair over the forehead,
the image border), which no drawn mask records. So each image is also segmented clean, and:

- the *evaluation region* is the clean image's face region (the fitted footprint) minus what
  the segmentation hides on the clean image (pre-existing occlusion, ignored like a "void"
  label); the share of the face hidden on clean images is reported on its own;
- IoU = |found & drawn| / |found | drawn| over the evaluation region (occluded class);
  "IoU, no void" counts the whole face region; "visible face hidden" is the share of the
  evaluation region's truly visible pixels that the mask hides;
- landmarks: those of the clean image (detected on photos, the true projections on renders)
  that lie under the drawn occluder are *occluded*; "caught" is the share of them that
  ``landmark_visible`` marks hidden; "wrongly hidden" the share of the others (leaving out
  those hidden on the clean image) marked hidden.

Per-kind figures are means over images (micro-averages for landmarks). Seconds are wall-clock
times of ``segment_occlusion`` (detection, quick fit and segmentation), one CPU thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from d3dface.bench import add_out_argument, output_folder, write_results
from d3dface.bench.occluders import OCCLUDER_KINDS, SKIN_COLOURED_KINDS, draw_occluder_of_type
from d3dface.bench.synthetic import synthetic_face, synthetic_pattern
from d3dface.facemodel.landmark_embedding import project_surface_points
from d3dface.facemodel.model import FaceModel
from d3dface.hub import CHECKPOINTS_DIR
from d3dface.imageio import load_image
from d3dface.perception.landmarks import LandmarkDetector, NoFaceError
from d3dface.perception.occlusion import segment_occlusion

RESULTS_DIR = Path("bench") / "results"
TEST_IMAGES = CHECKPOINTS_DIR.parent.parent / "shared" / "test_images"
PHOTOS = ("astronaut.png", "biden.jpg", "obama.jpg")
VARIANTS = ("original", "mirrored", "cropped", "jittered")
FIRST_RENDER_SEED = 90_000
OCCLUDER_SEED = 1_000
"""Occluder ``i`` of image ``j`` is drawn from ``default_rng(OCCLUDER_SEED + 100 * j + i)``."""


@dataclass(frozen=True)
class BenchImage:
    """A clean image and where its face's landmarks truly are.

    ``image`` (H, W, 3) uint8; ``landmarks`` (478, 2) pixels (detected on the clean photo, or
    projected from the render's mesh); ``name`` e.g. ``"obama.jpg mirrored"``.
    """

    name: str
    group: str  # "photo" or "render"
    image: np.ndarray
    landmarks: np.ndarray


def photo_variant(photo: np.ndarray, landmarks: np.ndarray, variant: str, seed: int) -> np.ndarray:
    """One of :data:`VARIANTS` of a photo ``(H, W, 3)`` uint8 whose face has ``landmarks``.

    ``mirrored`` flips left-right; ``cropped`` cuts a random share (up to 60 %) of the space
    around the face's landmark box, grown by half its size, off each side; ``jittered`` scales
    brightness (0.75-1.25), contrast (0.75-1.25) and saturation (0.6-1.4) and turns the hue
    by up to 8 degrees.
    """
    rng = np.random.default_rng(seed)
    if variant == "original":
        return photo.copy()
    if variant == "mirrored":
        return np.ascontiguousarray(photo[:, ::-1])
    if variant == "cropped":
        height, width = photo.shape[:2]
        low, high = landmarks.min(axis=0), landmarks.max(axis=0)
        keep_low = np.maximum(low - 0.5 * (high - low), 0)
        keep_high = np.minimum(high + 0.5 * (high - low), [width, height])
        x0, y0 = (keep_low * rng.uniform(0.0, 0.6, 2)).astype(int)
        x1, y1 = (keep_high + ([width, height] - keep_high) * rng.uniform(0.4, 1.0, 2)).astype(int)
        return np.ascontiguousarray(photo[y0:y1, x0:x1])
    if variant == "jittered":
        hsv = cv2.cvtColor(photo, cv2.COLOR_RGB2HSV).astype(np.float64)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-4.0, 4.0)) % 180.0  # OpenCV hue: 2 degrees
        hsv[..., 1] *= rng.uniform(0.6, 1.4)
        jittered = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
        contrast, brightness = rng.uniform(0.75, 1.25, 2)
        mean = jittered.mean()
        return np.clip((jittered - mean) * contrast + mean * brightness, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")


def bench_images(
    model: FaceModel,
    detector: LandmarkDetector,
    photos: Sequence[str],
    variants: Sequence[str],
    n_renders: int,
) -> Iterator[BenchImage]:
    """The clean images: each photo's variants (landmarks detected on each), then renders."""
    for photo_index, name in enumerate(photos):
        photo = load_image(TEST_IMAGES / name)
        faces = detector.detect(photo)
        if not faces:
            continue
        for variant_index, variant in enumerate(variants):
            seed = OCCLUDER_SEED + 10 * photo_index + variant_index
            image = photo_variant(photo, faces[0].points, variant, seed)
            found = detector.detect(image)
            if found:
                yield BenchImage(f"{name} {variant}", "photo", image, found[0].points)
    pattern = synthetic_pattern(model)
    for index in range(n_renders):
        face = synthetic_face(model, pattern, FIRST_RENDER_SEED + index)
        landmarks = project_surface_points(
            face.view.screen, model.faces, model.landmark_faces, model.landmark_bary
        ).numpy()
        yield BenchImage(f"render {FIRST_RENDER_SEED + index}", "render", face.image, landmarks)


def _landmarks_on(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bool: the (N, 2) pixel points lie inside the image and on ``mask``."""
    height, width = mask.shape
    cols, rows = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    hit = np.zeros(len(points), bool)
    hit[inside] = mask[rows[inside], cols[inside]]
    return hit


def score(
    found: np.ndarray,
    visible_landmarks: np.ndarray,
    truth: np.ndarray,
    true_points: np.ndarray,
    face_region: np.ndarray,
    void: np.ndarray,
) -> dict:
    """Figures of one found mask ``(H, W)`` against the drawn one ``(H, W)``.

    ``visible_landmarks`` (478,) the result's visibility; ``true_points`` (478, 2) where the
    landmarks truly are; ``face_region`` / ``void`` (H, W) bool from the clean image.
    """
    region = face_region & ~void
    hit, drawn = found & region, truth & region
    raw_hit, raw_drawn = found & face_region, truth & face_region
    clear = region & ~truth
    under = _landmarks_on(truth, true_points)
    clear_points = ~under & ~_landmarks_on(void, true_points)
    return {
        "iou": _ratio((hit & drawn).sum(), (hit | drawn).sum()),
        "iou_no_void": _ratio((raw_hit & raw_drawn).sum(), (raw_hit | raw_drawn).sum()),
        "visible_hidden": _ratio((found & clear).sum(), clear.sum()),
        "occluded_landmarks": int(under.sum()),
        "caught_landmarks": int((under & ~visible_landmarks).sum()),
        "clear_landmarks": int(clear_points.sum()),
        "wrongly_hidden_landmarks": int((clear_points & ~visible_landmarks).sum()),
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(float(numerator) / float(denominator), 4) if denominator else None


def run(
    model: FaceModel,
    photos: Sequence[str],
    variants: Sequence[str],
    n_renders: int,
    per_kind: int,
    progress: bool,
) -> dict:
    """Segment every occluded image; per-case records and a summary per kind and group."""
    records, clean = [], []
    load_before = os.getloadavg()
    with LandmarkDetector(max_num_faces=1) as detector:
        images = list(bench_images(model, detector, photos, variants, n_renders))
        for image_index, item in enumerate(images):
            base = segment_occlusion(
                item.image, model, method="model", detector=detector, landmarks=None
            )
            clean.append(
                {"image": item.name, "group": item.group, "hidden": round(base.hidden_fraction, 4)}
            )
            for case, kind in enumerate(k for k in OCCLUDER_KINDS for _ in range(per_kind)):
                rng = np.random.default_rng(OCCLUDER_SEED + 100 * image_index + case)
                occluded, truth = draw_occluder_of_type(item.image, item.landmarks, kind, rng)
                record = {"image": item.name, "group": item.group, "kind": kind, "case": case}
                clock = time.perf_counter()
                try:
                    found = segment_occlusion(occluded, model, method="model", detector=detector)
                except NoFaceError:
                    records.append({**record, "no_face": True})
                    continue
                record["seconds"] = round(time.perf_counter() - clock, 3)
                record.update(
                    score(
                        found.mask,
                        found.landmark_visible,
                        truth,
                        item.landmarks,
                        base.face_region,
                        base.mask,
                    )
                )
                records.append(record)
            if progress:
                print(_progress_line(image_index, len(images), item.name, records), flush=True)
    return {
        "images": [item.name for item in images],
        "per_kind": per_kind,
        "first_render_seed": FIRST_RENDER_SEED,
        "occluder_seed": OCCLUDER_SEED,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "clean_hidden": clean,
        "summary": summarise(records, clean),
        "records": records,
    }


def summarise(records: list[dict], clean: list[dict]) -> dict:
    """Means per occluder kind (all images, photos, renders) and the headline figures."""
    done = [r for r in records if not r.get("no_face")]
    per_kind = {}
    for kind in OCCLUDER_KINDS:
        mine = [r for r in done if r["kind"] == kind]
        per_kind[kind] = {
            "cases": len(mine),
            "no_face": sum(1 for r in records if r["kind"] == kind and r.get("no_face")),
            "iou": _mean(r["iou"] for r in mine),
            "iou_photos": _mean(r["iou"] for r in mine if r["group"] == "photo"),
            "iou_renders": _mean(r["iou"] for r in mine if r["group"] == "render"),
            "iou_no_void": _mean(r["iou_no_void"] for r in mine),
            "visible_hidden": _mean(r["visible_hidden"] for r in mine),
            "landmarks_caught": _ratio(
                sum(r["caught_landmarks"] for r in mine),
                sum(r["occluded_landmarks"] for r in mine),
            ),
            "landmarks_wrongly_hidden": _ratio(
                sum(r["wrongly_hidden_landmarks"] for r in mine),
                sum(r["clear_landmarks"] for r in mine),
            ),
        }
    non_skin = [per_kind[k]["iou"] for k in OCCLUDER_KINDS if k not in SKIN_COLOURED_KINDS]
    seconds = [r["seconds"] for r in done]
    return {
        "per_kind": per_kind,
        "mean_iou_non_skin": _mean(v for v in non_skin if v is not None),
        "mean_iou_skin_coloured": _mean(
            per_kind[k]["iou"] for k in SKIN_COLOURED_KINDS if per_kind[k]["iou"] is not None
        ),
        "clean_hidden_photos": _mean(c["hidden"] for c in clean if c["group"] == "photo"),
        "clean_hidden_renders": _mean(c["hidden"] for c in clean if c["group"] == "render"),
        "median_seconds": round(statistics.median(seconds), 3) if seconds else None,
        "max_seconds": max(seconds, default=None),
    }


def _mean(values: Iterator[float | None] | list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(statistics.fmean(kept), 3) if kept else None


def to_markdown(results: dict) -> str:
    """The summary as a Markdown table with a short header."""
    summary = results["summary"]
    lines = [
        "# Automatic occlusion masks on drawn occluders",
        "",
        f"{len(results['images'])} clean images ({_count(results['images'])}), "
        f"{results['per_kind']} occluder(s) of each kind per image, segmented with "
        '`segment_occlusion(method="model")` from scratch (detection, quick fit, '
        f"segmentation) on {results['torch_threads']} torch thread(s), {results['cpu_count']} "
        f"CPUs (load average before/after: {results['load_average_before'][0]} / "
        f"{results['load_average_after'][0]}). IoU of the occluded class over the clean "
        "image's face region minus what is already hidden on the clean image (see "
        "`d3dface/bench/occlusion.py`); landmark figures are shares of the clean landmarks "
        "under / not under the drawn occluder.",
        "",
        "| occluder | cases | IoU | IoU photos | IoU renders | IoU, no void | visible face "
        "hidden | landmarks caught | landmarks wrongly hidden | no face found |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, row in summary["per_kind"].items():
        lines.append(
            f"| {kind} | {row['cases']} | {_fmt(row['iou'])} | {_fmt(row['iou_photos'])} | "
            f"{_fmt(row['iou_renders'])} | {_fmt(row['iou_no_void'])} | "
            f"{_pct(row['visible_hidden'])} | {_pct(row['landmarks_caught'])} | "
            f"{_pct(row['landmarks_wrongly_hidden'])} | {row['no_face']} |"
        )
    lines += [
        "",
        f"- Mean IoU over the non-skin-coloured occluders: **{_fmt(summary['mean_iou_non_skin'])}**"
        f"; skin-coloured (hand): **{_fmt(summary['mean_iou_skin_coloured'])}**.",
        f"- Share of the face hidden on the clean images (real hair, beard, background at the "
        f"face's edge): photos {_pct(summary['clean_hidden_photos'])}, renders "
        f"{_pct(summary['clean_hidden_renders'])}.",
        f"- Seconds per image: median {summary['median_seconds']}, max {summary['max_seconds']}.",
    ]
    return "\n".join(lines) + "\n"


def _count(names: list[str]) -> str:
    photos = sum(1 for name in names if not name.startswith("render"))
    return f"{photos} photo variants, {len(names) - photos} renders"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _progress_line(index: int, total: int, name: str, records: list[dict]) -> str:
    """One line per image: the IoU of each of its occluders."""
    mine = [r for r in records if r["image"] == name]
    parts = [f"{r['kind']} {'no face' if r.get('no_face') else _fmt(r['iou'])}" for r in mine]
    return f"[occlusion] image {index + 1}/{total} {name}: " + ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """``occlusion [--quick] [--renders N] [--per-kind N] [--out DIR]``: occlusion.json/.md."""
    parser = argparse.ArgumentParser(prog="python -m d3dface.bench occlusion")
    parser.add_argument(
        "--quick", action="store_true", help="one photo and one render, one occluder per kind"
    )
    parser.add_argument("--renders", type=int, default=8, help="renders of the model (default 8)")
    parser.add_argument("--per-kind", type=int, default=2, help="occluders per kind and image")
    parser.add_argument("--face-model", type=Path, default=CHECKPOINTS_DIR / "face_model")
    add_out_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no per-image progress lines")
    args = parser.parse_args(argv)
    args.out = output_folder(args.out, args.quick, RESULTS_DIR)
    model = FaceModel.from_pretrained(args.face_model)
    photos, variants, n_renders, per_kind = PHOTOS, VARIANTS, args.renders, args.per_kind
    if args.quick:
        photos, variants, n_renders, per_kind = PHOTOS[:1], VARIANTS[:1], 1, 1
    if not (TEST_IMAGES / photos[0]).is_file():
        print(f"note: no test photos at {TEST_IMAGES}; renders only")
        photos = ()
    results = run(model, photos, variants, n_renders, per_kind, progress=not args.quiet)
    write_results(args.out, "occlusion", results, to_markdown(results))
    return 0
