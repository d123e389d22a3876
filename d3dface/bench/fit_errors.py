"""``python -m d3dface.bench fit-errors [--quick]``: how near the truth can N samples placed
around the stage-1 fit get, when they know how that fit errs?

The diversity benchmark's goal asks the closest of N = 8 samples to be 30% nearer the truth than
the single fit on the hidden part of the face. This benchmark measures how much any sample set
built from the fit can gain, given the best knowledge of the fit's errors that held-out data
gives: the Gaussian of the fit's residuals on the hidden vertices, learned from other fits with
the same kind of occluder (:func:`d3dface.bench.fit_error_model.fit_error_reference`), whose
N-point quantiser is the best N samples for such a Gaussian.

Faces: renders of the face model (seeds from 80000 up, apart from every other benchmark's and
every training seed) with the diversity benchmark's occluders in turn and their true masks,
each fitted by stage 1. Leave-one-out: every face is scored with a reference learned from R of
the others with its kind of occluder. Figures, means over faces in mm on the truly occluded
vertices: the fit's error, the bias-corrected fit's and the closest of N samples', and the
gain over the fit in distance (1 - mean CSD / mean fit error) and in squared distance, the
paper's MSE (:mod:`d3dface.bench.gains`):

- against R at N = 8, with the gain extrapolated to unlimited held-out fits (least squares of
  the gain against 1 / R), since the Gaussian learned from few fits is a poor one;
- against N with all the other fits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch

from d3dface.bench import add_out_argument, output_folder, write_results
from d3dface.bench.diversity import (
    OCCLUDERS,
    RESULTS_DIR,
    HeldOutFit,
    add_fit_iterations_argument,
    chosen_fit_settings,
    held_out_fits,
)
from d3dface.bench.fit_error_model import distance_mm, fit_error_reference
from d3dface.bench.gains import gains_over_fit
from d3dface.bench.synthetic import synthetic_pattern
from d3dface.facemodel.model import FaceModel
from d3dface.hub import CHECKPOINTS_DIR
from d3dface.perception.landmarks import LandmarkDetector

FIRST_SEED = 80_000
FACES = 330
REFERENCE_COUNTS = (8, 16, 32, 64)
"""R, held-out fits per reference, besides all the others with the face's kind of occluder."""
SAMPLE_COUNTS = (1, 8, 16, 32, 64)
DEFAULT_SAMPLES = 8
QUICK_FACES = 12
QUICK_REFERENCE_COUNTS = (2,)
QUICK_SAMPLE_COUNTS = (1, 8)
QUICK_FIT_ITERATIONS = 40


def leave_one_out(
    fits: Sequence[HeldOutFit],
    reference_counts: Sequence[int],
    sample_counts: Sequence[int],
    seed: int = 0,
) -> list[dict]:
    """Each fit scored by the references learned from the others with its kind of occluder.

    Args:
        fits: the held-out fits.
        reference_counts: R values tried at N = :data:`DEFAULT_SAMPLES`, each a random choice
            (seeded) of R others; one larger than the others available is skipped.
        sample_counts: N values tried with all the others.
        seed: seed of the choices and of the quantisers.

    Returns:
        One row per fit that has two others or more with its kind of occluder and hidden
        vertices: ``occlusion``, ``fit_mm``, and per setting (``"R=16, N=8"``,
        ``"all, N=32"``, ...) ``{"references", "samples", "corrected_fit_mm", "best_set_mm"}``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for index, fit in enumerate(fits):
        others = [
            other.residual
            for number, other in enumerate(fits)
            if number != index and other.occlusion == fit.occlusion
        ]
        if len(others) < 2 or not fit.occluded.any():
            continue
        # the fit's residual is truth - fit: the fit sits at -residual from a truth at zero
        truth = np.zeros_like(fit.residual)
        fitted = -fit.residual
        row: dict = {
            "occlusion": fit.occlusion,
            # the fit's error as CSD measures it
            "fit_mm": distance_mm(truth, fitted, fit.occluded),
        }
        settings = [(count, DEFAULT_SAMPLES) for count in reference_counts if count < len(others)]
        settings += [(len(others), samples) for samples in sample_counts]
        for count, samples in settings:
            chosen = rng.choice(len(others), count, replace=False)
            reference = fit_error_reference(
                np.stack([others[i] for i in sorted(chosen)]),
                fitted,
                truth,
                fit.occluded,
                samples,
                seed + index,
            )
            name = "all" if count == len(others) else f"R={count}"
            row[f"{name}, N={samples}"] = {"references": count, "samples": samples, **reference}
        rows.append(row)
    return rows


def summarise(rows: Sequence[dict]) -> dict:
    """Mean figures per setting (over the faces that have it) and per kind of occluder, and the
    gain extrapolated to unlimited references at N = :data:`DEFAULT_SAMPLES`."""
    settings = sorted({key for row in rows for key in row if "N=" in key}, key=_setting_order)
    table: dict = {"faces": len(rows), "settings": {}}
    for key in settings:
        chosen = [row for row in rows if key in row]
        table["settings"][key] = {
            "references": statistics.fmean(row[key]["references"] for row in chosen),
            "samples": chosen[0][key]["samples"],
            "corrected_fit_mm": statistics.fmean(row[key]["corrected_fit_mm"] for row in chosen),
            **_nearness(chosen, key),
        }
    at_default = [
        entry for entry in table["settings"].values() if entry["samples"] == DEFAULT_SAMPLES
    ]
    if len({entry["references"] for entry in at_default}) >= 2:
        inverse = np.array([1.0 / entry["references"] for entry in at_default])
        gains = np.array([entry["gain"] for entry in at_default])
        slope, intercept = np.polyfit(inverse, gains, 1)
        table["gain_unlimited_references"] = float(intercept)
        table["gain_slope_per_inverse_reference"] = float(slope)
    full = f"all, N={DEFAULT_SAMPLES}"
    table["by_occlusion"] = {
        kind: _nearness(chosen, full)
        for kind in OCCLUDERS
        if (chosen := [row for row in rows if row["occlusion"] == kind and full in row])
    }
    return table


def _nearness(rows: Sequence[dict], setting: str) -> dict:
    """Over ``rows`` that have ``setting``: their count, the mean fit error and closest-sample
    distance (mm), and the gains over the fit (:func:`d3dface.bench.gains.gains_over_fit`)."""
    fit_mm = [row["fit_mm"] for row in rows]
    best_mm = [row[setting]["best_set_mm"] for row in rows]
    return {
        "faces": len(rows),
        "fit_mm": statistics.fmean(fit_mm),
        "best_set_mm": statistics.fmean(best_mm),
        **gains_over_fit(fit_mm, best_mm),
    }


def _setting_order(key: str) -> tuple[int, int]:
    """Sort key of a setting name: the fixed-R ones first by R, then 'all' by N."""
    name, samples = key.split(", N=")
    return (int(name[2:]) if name.startswith("R=") else 10**9, int(samples))


def to_markdown(results: dict) -> str:
    """The report: the gain against R and against N, and per kind of occluder."""
    table = results["table"]
    lines = [
        "# How near can N samples around the stage-1 fit get?",
        "",
        results["description"],
        "",
        "Leave-one-out: each face's fit-error reference (d3dface.bench.fit_error_model) is "
        "learned from R other fits with its kind of occluder. CSD and errors in mm on the "
        "truly occluded vertices; gain = 1 - mean CSD / mean fit error, and in squared "
        "distance (the mean squared error, the unit the paper's headline names) "
        "1 - mean CSD^2 / mean fit error^2 (d3dface.bench.gains).",
        "",
        "| held-out fits R | N | faces | single fit | bias-corrected fit | closest of N | gain "
        "| gain in MSE |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in table["settings"].values():
        lines.append(
            f"| {entry['references']:.0f} | {entry['samples']} | {entry['faces']} | "
            f"{entry['fit_mm']:.2f} | {entry['corrected_fit_mm']:.2f} | "
            f"{entry['best_set_mm']:.2f} | {100 * entry['gain']:.1f}% | "
            f"{100 * entry['mse_gain']:.1f}% |"
        )
    if "gain_unlimited_references" in table:
        lines += [
            "",
            f"Gain at N = {DEFAULT_SAMPLES} extrapolated to unlimited held-out fits (least "
            f"squares of the gain against 1 / R): "
            f"**{100 * table['gain_unlimited_references']:.1f}%**.",
        ]
    lines += [
        "",
        f"Per kind of occluder, all other fits, N = {DEFAULT_SAMPLES}:",
        "",
        "| occlusion | faces | single fit | closest of N | gain | gain in MSE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind, entry in table["by_occlusion"].items():
        lines.append(
            f"| {kind} | {entry['faces']} | {entry['fit_mm']:.2f} | "
            f"{entry['best_set_mm']:.2f} | {100 * entry['gain']:.1f}% | "
            f"{100 * entry['mse_gain']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Fit the faces, score them leave-one-out, write ``fit_errors.json`` / ``fit_errors.md``."""
    parser = argparse.ArgumentParser(prog="python -m d3dface.bench fit-errors")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_FACES} faces, {QUICK_FIT_ITERATIONS} fitting iterations (a smoke test)",
    )
    parser.add_argument("--faces", type=int, help=f"number of faces ({FACES})")
    add_fit_iterations_argument(parser, QUICK_FIT_ITERATIONS)
    add_out_argument(parser)
    args = parser.parse_args(argv)
    args.out = output_folder(args.out, args.quick, RESULTS_DIR)
    n_faces = args.faces or (QUICK_FACES if args.quick else FACES)
    fit_settings = chosen_fit_settings(args, QUICK_FIT_ITERATIONS)
    reference_counts = QUICK_REFERENCE_COUNTS if args.quick else REFERENCE_COUNTS
    sample_counts = QUICK_SAMPLE_COUNTS if args.quick else SAMPLE_COUNTS
    model = FaceModel.from_pretrained(CHECKPOINTS_DIR / "face_model")
    clock = time.perf_counter()
    fits = []
    for fit in held_out_fits(
        model,
        synthetic_pattern(model),
        LandmarkDetector(),
        FIRST_SEED,
        n_faces,
        fit_settings,
    ):
        fits.append(fit)
        print(f"[{len(fits)}/{n_faces}] fitted ({fit.occlusion})", flush=True)
    rows = leave_one_out(fits, reference_counts, sample_counts)
    results = {
        "rows": rows,
        "table": summarise(rows),
        "seconds": time.perf_counter() - clock,
        "threads": torch.get_num_threads(),
        "description": (
            f"{n_faces} renders of the face model (seeds {FIRST_SEED}+), occluders in turn "
            f"{', '.join(f'{k} ({v})' for k, v in OCCLUDERS.items())}, true masks; "
            f"{len(fits)} fitted ({fit_settings.iterations} stage-1 iterations), "
            f"{len(rows)} scored; "
            f"{torch.get_num_threads()} torch threads, load average "
            f"{os.getloadavg()[0]:.2f}."
        ),
    }
    write_results(args.out, "fit_errors", results, to_markdown(results))
    return 0
