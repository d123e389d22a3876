"""``python -m d3dface.bench fitting [--quick]``: stage-1 accuracy and speed on synthetic faces.

Faces: renders of the face model (:mod:`d3dface.bench.synthetic`; seeds from 50000 up, apart
from the face-model build's 1000-1300 / 2000-2100, the fit's tuning seeds 60000+ and training
seeds), every second one with a random rectangle or ellipse occluder whose mask is passed to
the fit. Two sets of faces on the same seeds:

- *global-model faces*: random identity and expression of the global model. The local models
  are regional PCAs of that same global model, so here they have nothing to add.
- *faces with local detail*: the same draws plus local coefficients from N(0, 0.5^2) (half the
  local models' prior), regional shape that no global coefficient vector reproduces (about
  0.9 mm RMS on the face outside the global model's span): a stand-in for real faces, which
  the global model does not span either. Here global+local can be better than global.

Each face is fitted through the full path (mediapipe on the render, crop, rigid and non-rigid
stages) in four variants: global or global+local, each without and with the photometric term.

Error: over the *truly visible* facial vertices (in front, facing the camera, not under the
occluder, region weight of "rest" below 0.5, i.e. no scalp, ears or neck), the fitted
model-space mesh is aligned to the true one by the least-squares similarity (rotation, uniform
scale, translation: a single photo fixes neither the distance nor, hence, the absolute size),
then ``||A - B||_F / sqrt(|V|)`` in millimetres. The mean face, aligned the same way, is the
baseline. Seconds per fit are wall-clock times of :func:`d3dface.fitting.fit_face`, landmark
detection included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch

from d3dface.bench import add_out_argument, output_folder, write_results
from d3dface.bench.synthetic import (
    SyntheticFace,
    aligned_error_mm,
    synthetic_face,
    synthetic_pattern,
    truly_visible,
)
from d3dface.facemodel.model import FaceModel
from d3dface.fitting import FitSettings, fit_face
from d3dface.hub import CHECKPOINTS_DIR
from d3dface.perception.landmarks import LandmarkDetector, NoFaceError

RESULTS_DIR = Path("bench") / "results"
FIRST_SEED = 50_000
QUICK_ITERATIONS = 100
LOCAL_DETAIL_SCALE = 0.5
FACE_SETS = {"global-model faces": 0.0, "faces with local detail": LOCAL_DETAIL_SCALE}
"""Name of each set of faces -> the scale of its local detail (see the module docstring)."""
VARIANTS = {
    "global": FitSettings(use_local=False, use_photometric=False),
    "global + photometric": FitSettings(use_local=False),
    "global+local": FitSettings(use_photometric=False),
    "global+local + photometric": FitSettings(),
}
"""The fitted variants: FitSettings' defaults with the local stage and/or the photometric
term switched off."""


def run(model: FaceModel, n_faces: int, iterations: int | None, progress: bool) -> dict:
    """Fit ``n_faces`` synthetic faces of each set in every variant: per set, per-face records
    and a summary."""
    pattern = synthetic_pattern(model)
    variants = {
        name: settings if iterations is None else replace(settings, iterations=iterations)
        for name, settings in VARIANTS.items()
    }
    load_before = os.getloadavg()
    sets = {}
    with LandmarkDetector(max_num_faces=1) as detector:
        for set_name, local_scale in FACE_SETS.items():
            records = []
            for index in range(n_faces):
                seed = FIRST_SEED + index
                face = synthetic_face(model, pattern, seed, index % 2 == 1, local_scale)
                record = {"seed": seed, **evaluate_face(model, face, variants, detector)}
                records.append(record)
                if progress:
                    print(_progress_line(set_name, index, n_faces, record), flush=True)
            sets[set_name] = {
                "local_scale": local_scale,
                "summary": summarise(records),
                "records": records,
            }
    return {
        "faces": n_faces,
        "first_seed": FIRST_SEED,
        "iterations": iterations or FitSettings().iterations,
        "settings": asdict(FitSettings()),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "sets": sets,
    }


def evaluate_face(
    model: FaceModel,
    face: SyntheticFace,
    variants: dict[str, FitSettings],
    detector: LandmarkDetector,
) -> dict:
    """Errors (mm), seconds and landmark errors (px) of each variant's fit of one face, and
    the mean face's error; ``no_face`` when mediapipe finds no face in the render."""
    where = truly_visible(model, face)
    true = face.view.vertices.numpy()
    record: dict = {
        "occluded": face.mask is not None,
        "visible_vertices": int(where.sum()),
        "mean_face_mm": round(aligned_error_mm(model.template.numpy(), true, where), 3),
    }
    for name, settings in variants.items():
        clock = time.perf_counter()
        try:
            fit = fit_face(face.image, model, face.mask, settings=settings, detector=detector)
        except NoFaceError:
            return {**record, "no_face": True}
        record[name] = {
            "error_mm": round(aligned_error_mm(fit.vertices.numpy(), true, where), 3),
            "seconds": round(time.perf_counter() - clock, 3),
            "landmark_error_px": round(fit.landmark_error_px, 3),
        }
    return record


def summarise(records: list[dict]) -> dict:
    """Medians per variant over all, clean and occluded faces (faces mediapipe missed are left
    out and counted)."""
    fitted = [r for r in records if not r.get("no_face")]
    summary: dict = {"no_face": len(records) - len(fitted)}
    subsets = {
        "all": fitted,
        "clean": [r for r in fitted if not r["occluded"]],
        "occluded": [r for r in fitted if r["occluded"]],
    }
    summary["mean face"] = {
        f"median_mm_{name}": _median([r["mean_face_mm"] for r in subset])
        for name, subset in subsets.items()
    }
    for variant in VARIANTS:
        row = {
            f"median_mm_{name}": _median([r[variant]["error_mm"] for r in subset])
            for name, subset in subsets.items()
        }
        row["mean_mm_all"] = _mean([r[variant]["error_mm"] for r in fitted])
        row["median_seconds"] = _median([r[variant]["seconds"] for r in fitted])
        row["median_landmark_px"] = _median([r[variant]["landmark_error_px"] for r in fitted])
        summary[variant] = row
    return summary


def to_markdown(results: dict) -> str:
    """The summaries as Markdown tables, one per set of faces, with a short header."""
    lines = [
        "# Stage-1 fitting on synthetic faces",
        "",
        f"{results['faces']} renders of the face model per set (512 px, seeds "
        f"{results['first_seed']}+, every second one with a drawn occluder whose mask the fit "
        f"gets), {results['iterations']} non-rigid iterations, torch threads: "
        f"{results['torch_threads']} (OMP_WAIT_POLICY {results['omp_wait_policy']}), CPUs: "
        f"{results['cpu_count']} "
        f"(load average before/after: {results['load_average_before'][0]} / "
        f"{results['load_average_after'][0]}; other jobs shared the CPUs, so seconds are "
        "upper bounds). Error: RMS vertex distance over the truly visible facial vertices "
        "after a similarity alignment, mm.",
        "",
        "The renders: identity N(0, 0.8^2) per mode, a few expression shapes, head turned "
        "up to 26 degrees (yaw), 11 (pitch), 7 (roll), one light, skin tone, background; "
        "lips, brows and irises painted so mediapipe finds the face. *Global-model faces* "
        "are faces of the global model only, which the local models (regional PCAs of the "
        "same global model) cannot improve on. *Faces with local detail* add local "
        f"coefficients drawn from N(0, {LOCAL_DETAIL_SCALE}^2) (the local models' prior, "
        "scaled): regional shape outside the global model's span, as real faces have.",
    ]
    for set_name, face_set in results["sets"].items():
        summary = face_set["summary"]
        lines += [
            "",
            f"## {set_name}",
            "",
            f"Faces where mediapipe found no face: {summary['no_face']}.",
            "",
            "| variant | median mm, all | clean | occluded | mean mm, all | s / fit | "
            "landmark px |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        baseline = summary["mean face"]
        lines.append(
            f"| mean face (no fit) | {baseline['median_mm_all']} | "
            f"{baseline['median_mm_clean']} | {baseline['median_mm_occluded']} | | | |"
        )
        for variant in VARIANTS:
            row = summary[variant]
            lines.append(
                f"| {variant} | {row['median_mm_all']} | {row['median_mm_clean']} | "
                f"{row['median_mm_occluded']} | {row['mean_mm_all']} | "
                f"{row['median_seconds']} | {row['median_landmark_px']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``fitting [--quick] [--faces N] [--iterations N] [--out DIR]``: writes fitting.json/.md."""
    parser = argparse.ArgumentParser(prog="python -m d3dface.bench fitting")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"2 faces per set at {QUICK_ITERATIONS} iterations (about 1 min)",
    )
    parser.add_argument("--faces", type=int, default=24, help="faces per set (default 24)")
    parser.add_argument("--iterations", type=int, help="non-rigid iterations (default: fit's)")
    parser.add_argument("--face-model", type=Path, default=CHECKPOINTS_DIR / "face_model")
    add_out_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no per-face progress lines")
    args = parser.parse_args(argv)
    args.out = output_folder(args.out, args.quick, RESULTS_DIR)
    model = FaceModel.from_pretrained(args.face_model)
    n_faces, iterations = args.faces, args.iterations
    if args.quick:
        n_faces, iterations = 2, iterations or QUICK_ITERATIONS
    results = run(model, n_faces, iterations, progress=not args.quiet)
    write_results(args.out, "fitting", results, to_markdown(results))
    return 0


def _progress_line(set_name: str, index: int, total: int, record: dict) -> str:
    """One line per fitted face: its errors in every variant."""
    where = f"[fitting] {set_name}, face {index + 1}/{total} seed {record['seed']}"
    if record.get("no_face"):
        return f"{where}: no face found"
    errors = ", ".join(f"{name} {record[name]['error_mm']}" for name in VARIANTS)
    return (
        f"{where}"
        f"{' (occluded)' if record['occluded'] else ''}: mean face {record['mean_face_mm']}, "
        f"{errors} mm"
    )


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None
