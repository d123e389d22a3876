"""``python -m d3dface.bench diversity [--quick]``: stage 2 against its baselines (paper
Tables 1 and 2) on faces with known shape.

Faces: renders of the face model (:mod:`d3dface.bench.synthetic`, seeds from 70000 up, apart
from the build's, the fitting benchmark's and every training seed) with an occluder of one of
the paper's three types drawn on (:mod:`d3dface.bench.occluders`): glasses (dark sunglasses,
which hide the eye regions), a face mask, or a random textured object. Each goes through the
full path: mediapipe on the render, the occlusion mask (the true one, and also the automatic
one of :mod:`d3dface.perception.occlusion`), the stage-1 fit, then N completions by each method:

- Global+DPP: the DPP over the global model's coefficients (the paper's "FLAME+DPP");
- Global+Local+DPP: the same with the local models' coefficients;
- Global+Local+VAE: posterior samples of the Mesh-VAE given the masked fit, no optimisation;
- ours (Diverse3DFace): the Mesh-VAE's codes optimised with the DPP, decoded relative to the
  fit (:class:`d3dface.latent_spaces.VAESpace`, anchored);
- ours, direct decoding: the same with codes decoded directly, as the paper does (the
  Global+Local+VAE baseline decodes directly too).

Metrics (:mod:`d3dface.metrics`, mm): ASD-V and ASD-O over the fit's visible and occluded
vertices, their ratio, and CSD: the distance from the true mesh to the closest sample over the
truly occluded facial vertices, after the similarity alignment that maps the fit onto the
truth on the truly visible facial vertices (one transform for all samples). "fit" is that
distance for the single stage-1 fit; its error on the truly visible vertices is shown beside
it. Beside them, three references: what an oracle that knows the faces' prior and sees the
truly visible vertices could reach (:func:`d3dface.bench.csd_bound.csd_bound`: its posterior
mean's error and the expected CSD of its best N samples); the same oracle observing instead
what the methods hold to, the fit's visible vertices, at the noises of
:data:`ANCHOR_NOISES_MM` (:func:`d3dface.bench.csd_bound.anchored_oracle`: how near N samples
that agree with the fit where it is visible can get, and how much they then agree), with the
fit aligned to the truth first or, as the methods must, in its own frame
(:data:`ANCHOR_FRAMES`); and what
N samples around the fit reach when they know the distribution of the fit's own errors on the
hidden vertices, learned from the fits of held-out renders with the same kind of occluder
(:func:`d3dface.bench.fit_error_model.fit_error_reference`; how that grows with more held-out
fits and more samples: :mod:`d3dface.bench.fit_errors`). For each method,
how well the samples' offsets from the fit point along the fit's error
(:mod:`d3dface.bench.offset_directions`): a sample can only come nearer the truth than the fit
where its offset points that way. Every method's and reference's gain over the fit is given in
distance and in squared distance, the paper's MSE (:mod:`d3dface.bench.gains`). The k x n_sigma
sweep (Table 2) runs ours on the first faces with the true mask.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from d3dface.bench import add_out_argument, output_folder, write_results
from d3dface.bench.alignment import apply_similarity, similarity_transform
from d3dface.bench.csd_bound import anchored_oracle, csd_bound
from d3dface.bench.fit_error_model import aligned_residual, fit_error_reference
from d3dface.bench.gains import PAPER_MSE_GAIN, distance_gain_of, gains_over_fit, mse_gain_of
from d3dface.bench.occluders import draw_occluder_of_type
from d3dface.bench.offset_directions import offset_direction_figures, required_cosine
from d3dface.bench.synthetic import SyntheticFace, synthetic_pattern, truly_visible
from d3dface.diversity import CompletionTarget, DiversitySettings, diversify
from d3dface.facemodel.landmark_embedding import (
    SyntheticView,
    project_surface_points,
    render_view,
)
from d3dface.facemodel.model import FaceModel
from d3dface.fitting import DEFAULT_ITERATIONS as DEFAULT_FIT_ITERATIONS
from d3dface.fitting import FitResult, FitSettings, fit_face
from d3dface.hub import CHECKPOINTS_DIR
from d3dface.latent_spaces import LatentSpace, ModelSpace, VAESpace
from d3dface.metrics import closest_sample_distance, diversity_metrics, mesh_distance
from d3dface.perception.landmarks import LandmarkDetector, NoFaceError
from d3dface.vae.model import MeshVAE

RESULTS_DIR = Path("bench") / "results"
FIRST_SEED = 70_000
REFERENCE_FIRST_SEED = 75_000
"""Seeds of the held-out renders whose fits teach the fit-error reference its residuals."""
REFERENCE_FACES = 96
"""Held-out fits of the fit-error reference: 32 per kind of occluder."""
OCCLUDERS = {"glasses": "sunglasses", "face mask": "face_mask", "random": "object"}
"""The paper's occlusion types and the occluder kind drawn for each."""
METHODS = ("Global+DPP", "Global+Local+DPP", "Global+Local+VAE", "ours, direct decoding", "ours")
SWEEP_K = (0.1, 0.25, 0.5, 1.0, 2.0)
SWEEP_N_SIGMA = (1.0, 2.0, 3.0, 4.0, 5.0)
QUICK_FIT_ITERATIONS = 50
METRICS = ("asd_v_mm", "asd_o_mm", "asd_ratio", "csd_mm", "best_cosine", "csd_best_length_mm")
REFERENCE_KEYS = {
    "oracle_mean_mm": "oracle mean",
    "oracle_best_mm": "oracle best N",
    "fit_error_corrected_mm": "fit-error model: corrected fit",
    "fit_error_best_mm": "fit-error model: best N",
}
"""The CSD references recorded per face, and their column titles."""
ANCHOR_NOISES_MM = (1.0, 2.0, 4.0)
"""How loosely the anchored oracle (:func:`~d3dface.bench.csd_bound.anchored_oracle`) holds
the fit's visible vertices: its observation noise per coordinate, mm."""
ANCHORED_METRICS = ("asd_v_mm", "asd_o_mm", "posterior_mean_mm", "best_set_mm")
ANCHOR_FRAMES = {
    "anchored": "anchored oracle",
    "anchored_own_frame": "anchored oracle, fit's frame",
}
"""The anchored oracle's two frames, as records key them, and their names in the report: the
fit aligned to the truth before the oracle conditions on it, or the fit as it is, the oracle's
samples then carried onto the truth by the methods' alignment."""


def method_space(
    method: str, model: FaceModel, vae: MeshVAE, fit: FitResult, target: CompletionTarget
) -> LatentSpace:
    """The latent space a method searches."""
    if method in ("ours", "ours, direct decoding", "Global+Local+VAE"):
        return VAESpace(vae, target.fitted, target.occluded, anchored=method == "ours")
    return ModelSpace(
        model,
        fit.identity,
        fit.expression,
        fit.local,
        use_local=method == "Global+Local+DPP",
    )


def complete(
    method: str,
    space: LatentSpace,
    target: CompletionTarget,
    faces: torch.Tensor,
    settings: DiversitySettings,
) -> torch.Tensor:
    """(N, V, 3) completions of one method."""
    if method == "Global+Local+VAE":
        generator = torch.Generator().manual_seed(settings.seed)
        with torch.no_grad():
            return space.decode(space.initial_codes(settings.n_samples, generator))
    return diversify(space, target, faces, settings).vertices


def score(
    samples: torch.Tensor,
    target: CompletionTarget,
    truth: torch.Tensor,
    transform: tuple[np.ndarray, float, np.ndarray],
    truly_occluded: torch.Tensor,
) -> dict[str, float]:
    """ASD-V, ASD-O, ratio (fit's vertex classes), CSD (truly occluded vertices, mm) and
    how the samples' offsets from the fit point at the truth there
    (:func:`d3dface.bench.offset_directions.offset_direction_figures`)."""
    metrics = diversity_metrics(samples, target.visible, target.occluded)
    as_tensors = tuple(torch.from_numpy(np.asarray(x)).float() for x in transform)
    aligned = apply_similarity(samples, as_tensors)
    fit_aligned = apply_similarity(target.fitted, as_tensors)
    metrics["csd_mm"] = closest_sample_distance(aligned, truth, truly_occluded)
    metrics |= offset_direction_figures(aligned, fit_aligned, truth, truly_occluded)
    return metrics


def run(
    model: FaceModel,
    vae: MeshVAE,
    n_faces: int,
    settings: DiversitySettings,
    sweep_faces: int,
    auto_mask: bool,
    progress: bool,
    fit_settings: FitSettings | None = None,
    reference_faces: int = 0,
) -> dict:
    """Every face through every method (and the sweep); records and summaries.

    ``reference_faces`` held-out renders are fitted first for the fit-error reference
    (:func:`held_out_residuals`); a face whose kind of occluder has fewer than two of them
    goes without it.
    """
    pattern = synthetic_pattern(model)
    detector = LandmarkDetector()
    records: list[dict] = []
    sweep: list[dict] = []
    skipped = 0
    residuals = held_out_residuals(model, pattern, detector, reference_faces, fit_settings)
    for index in range(n_faces):
        seed = FIRST_SEED + index
        occlusion_type = list(OCCLUDERS)[index % len(OCCLUDERS)]
        case = occluded_render(model, pattern, detector, seed, occlusion_type)
        if case is None:
            skipped += 1
            continue
        view, image, true_mask, landmarks, visible_true, occluded_true = case
        bound = csd_bound(model, visible_true, occluded_true, settings.n_samples, seed=seed)
        masks = {"true mask": true_mask}
        if auto_mask:
            from d3dface.perception.occlusion import segment_occlusion

            masks["automatic mask"] = segment_occlusion(
                image, model, landmarks=landmarks, detector=detector
            ).mask
        for mask_name, mask in masks.items():
            try:
                fit = fit_face(image, model, mask, landmarks, settings=fit_settings)
            except (NoFaceError, ValueError):
                skipped += 1
                continue
            target = CompletionTarget.from_fit(fit, model, settings.photometric_size)
            if not bool(target.occluded.any()) or not bool(occluded_true.any()):
                skipped += 1
                continue
            transform = similarity_transform(
                fit.vertices[visible_true].double().numpy(),
                view.vertices[visible_true].double().numpy(),
            )
            fit_aligned = apply_similarity(fit.vertices.double().numpy(), transform)
            fit_tensor, truth = torch.from_numpy(fit_aligned), view.vertices.double()
            record = {
                "seed": seed,
                "occlusion": occlusion_type,
                "mask": mask_name,
                "fit_visible_mm": float(mesh_distance(fit_tensor, truth, visible_true) * 1000.0),
                "fit_occluded_mm": float(mesh_distance(fit_tensor, truth, occluded_true) * 1000.0),
                "oracle_mean_mm": bound["posterior_mean_mm"],
                "oracle_best_mm": bound["best_set_mm"],
                "occluded_vertex_fraction": float(target.occluded.float().mean()),
            }
            if len(residuals.get(occlusion_type, ())) >= 2:
                reference = fit_error_reference(
                    residuals[occlusion_type],
                    fit_aligned,
                    truth.numpy(),
                    occluded_true.numpy(),
                    settings.n_samples,
                    seed,
                )
                record["fit_error_corrected_mm"] = reference["corrected_fit_mm"]
                record["fit_error_best_mm"] = reference["best_set_mm"]
            observations = {
                "anchored": (fit_aligned, None),
                "anchored_own_frame": (fit.vertices.double().numpy(), transform),
            }
            for frame, (observed, to_truth) in observations.items():
                record[frame] = {
                    f"{noise:g}": anchored_oracle(
                        model,
                        observed,
                        truth.numpy(),
                        visible_true.numpy(),
                        occluded_true.numpy(),
                        settings.n_samples,
                        noise / 1000.0,
                        seed=seed,
                        to_truth=to_truth,
                    )
                    for noise in ANCHOR_NOISES_MM
                }
            for method in METHODS:
                clock = time.perf_counter()
                space = method_space(method, model, vae, fit, target)
                samples = complete(method, space, target, model.faces, settings)
                seconds = time.perf_counter() - clock
                metrics = score(samples, target, view.vertices, transform, occluded_true)
                record[method] = {**metrics, "seconds": seconds}
            records.append(record)
            if progress:
                print(_progress_line(len(records), record), flush=True)
            if mask_name == "true mask" and index < sweep_faces:
                sweep += _sweep(model, vae, fit, target, view, transform, occluded_true, settings)
    return {
        "records": records,
        "sweep_records": sweep,
        "skipped": skipped,
        "table1": summarise(records),
        "table2": summarise_sweep(sweep),
    }


class OccludedRender(NamedTuple):
    """A render with an occluder drawn on, and what the benchmark knows of it.

    Attributes:
        view: the render's face and camera.
        image: (H, W, 3) uint8 the render with the occluder.
        true_mask: (H, W) bool the occluder's pixels.
        landmarks: (478, 2) mediapipe's landmarks on ``image``, pixels.
        visible: (V,) bool the truly visible facial vertices.
        occluded: (V,) bool the facial vertices the render shows but the occluder hides.
    """

    view: SyntheticView
    image: np.ndarray
    true_mask: np.ndarray
    landmarks: np.ndarray
    visible: torch.Tensor
    occluded: torch.Tensor


def occluded_render(
    model: FaceModel,
    pattern: torch.Tensor,
    detector: LandmarkDetector,
    seed: int,
    occlusion_type: str,
) -> OccludedRender | None:
    """The render of ``seed`` with an occluder of ``occlusion_type`` drawn on, or None when
    mediapipe finds no face."""
    view = render_view(model, pattern, torch.Generator().manual_seed(seed))
    landmarks_px = project_surface_points(
        view.screen, model.faces, model.landmark_faces, model.landmark_bary
    ).numpy()
    image, true_mask = draw_occluder_of_type(
        view.image, landmarks_px, OCCLUDERS[occlusion_type], np.random.default_rng(seed)
    )
    try:
        landmarks = detector.detect(image)[0]
    except IndexError:
        return None
    visible = torch.from_numpy(truly_visible(model, SyntheticFace(image, true_mask, view)))
    seen = torch.from_numpy(truly_visible(model, SyntheticFace(image, None, view)))
    return OccludedRender(view, image, true_mask, landmarks, visible, seen & ~visible)


@dataclass(frozen=True)
class HeldOutFit:
    """What the fit-error references keep of one held-out render's stage-1 fit.

    Attributes:
        occlusion: its kind of occluder (a key of :data:`OCCLUDERS`).
        residual: (V, 3) ``truth - fit`` in metres, the fit aligned to the truth on the truly
            visible vertices (:func:`~d3dface.bench.fit_error_model.aligned_residual`).
        occluded: (V,) bool, its truly occluded facial vertices.
    """

    occlusion: str
    residual: np.ndarray
    occluded: np.ndarray


def held_out_fits(
    model: FaceModel,
    pattern: torch.Tensor,
    detector: LandmarkDetector,
    first_seed: int,
    n_faces: int,
    fit_settings: FitSettings | None,
) -> Iterator[HeldOutFit]:
    """The fits of ``n_faces`` renders (seeds from ``first_seed``, occluders in turn, true
    masks); a render where mediapipe finds no face, or the fit fails, is left out."""
    for index in range(n_faces):
        occlusion_type = list(OCCLUDERS)[index % len(OCCLUDERS)]
        case = occluded_render(model, pattern, detector, first_seed + index, occlusion_type)
        if case is None:
            continue
        try:
            fit = fit_face(case.image, model, case.true_mask, case.landmarks, settings=fit_settings)
        except (NoFaceError, ValueError):
            continue
        residual = aligned_residual(
            fit.vertices.double().numpy(),
            case.view.vertices.double().numpy(),
            case.visible.numpy(),
        )
        yield HeldOutFit(occlusion_type, residual, case.occluded.numpy())


def held_out_residuals(
    model: FaceModel,
    pattern: torch.Tensor,
    detector: LandmarkDetector,
    n_faces: int,
    fit_settings: FitSettings | None,
) -> dict[str, np.ndarray]:
    """Kind of occluder -> (R, V, 3) the residuals of the :func:`held_out_fits` of
    ``n_faces`` renders from ``REFERENCE_FIRST_SEED``, metres."""
    residuals: dict[str, list[np.ndarray]] = {}
    fits = held_out_fits(model, pattern, detector, REFERENCE_FIRST_SEED, n_faces, fit_settings)
    for fit in fits:
        residuals.setdefault(fit.occlusion, []).append(fit.residual)
    return {kind: np.stack(found) for kind, found in residuals.items()}


def _sweep(
    model: FaceModel,
    vae: MeshVAE,
    fit: FitResult,
    target: CompletionTarget,
    view: SyntheticView,
    transform: tuple[np.ndarray, float, np.ndarray],
    occluded_true: torch.Tensor,
    settings: DiversitySettings,
) -> list[dict]:
    """Ours at every (k, n_sigma) of the sweep on one face."""
    rows = []
    for k in SWEEP_K:
        for n_sigma in SWEEP_N_SIGMA:
            swept = replace(settings, k=k, n_sigma=n_sigma)
            space = method_space("ours", model, vae, fit, target)
            samples = diversify(space, target, model.faces, swept).vertices
            metrics = score(samples, target, view.vertices, transform, occluded_true)
            rows.append({"k": k, "n_sigma": n_sigma, **metrics})
    return rows


def summarise(records: list[dict]) -> dict:
    """Mean of each metric per occlusion type (and overall), method and mask source."""
    table: dict = {}
    for mask_name in sorted({r["mask"] for r in records}):
        chosen = [r for r in records if r["mask"] == mask_name]
        groups = {name: [r for r in chosen if r["occlusion"] == name] for name in OCCLUDERS}
        groups["overall"] = chosen
        table[mask_name] = {}
        for group, rows in groups.items():
            if not rows:
                continue
            entry: dict = {"faces": len(rows)}
            for key in ("fit_visible_mm", "fit_occluded_mm", *REFERENCE_KEYS):
                if all(key in r for r in rows):
                    entry[key] = statistics.fmean(r[key] for r in rows)
            for frame in ANCHOR_FRAMES:
                entry[frame] = {
                    noise: _with_ratio_of_means(
                        {
                            m: statistics.fmean(r[frame][noise][m] for r in rows)
                            for m in ANCHORED_METRICS
                        }
                    )
                    for noise in rows[0][frame]
                }
            for method in METHODS:
                means = {m: statistics.fmean(r[method][m] for r in rows) for m in METRICS}
                means = _with_ratio_of_means(means)
                means["seconds"] = statistics.fmean(r[method]["seconds"] for r in rows)
                entry[method] = means
            entry["gains"] = _gains(rows)
            table[mask_name][group] = entry
    return table


def _gains(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Each method's and reference's gain over the fit, in distance and in squared distance
    (:func:`d3dface.bench.gains.gains_over_fit`), keyed by its row title in the report."""
    fit = [r["fit_occluded_mm"] for r in rows]
    closest = {method: [r[method]["csd_mm"] for r in rows] for method in METHODS}
    for frame in ANCHOR_FRAMES:
        for noise in rows[0][frame]:
            closest[_anchored_title(frame, noise)] = [r[frame][noise]["best_set_mm"] for r in rows]
    if all("fit_error_best_mm" in r for r in rows):
        closest[REFERENCE_KEYS["fit_error_best_mm"]] = [r["fit_error_best_mm"] for r in rows]
    return {name: gains_over_fit(fit, values) for name, values in closest.items()}


def _anchored_title(frame: str, noise: str) -> str:
    """The report's name of the anchored oracle in ``frame`` (a key of :data:`ANCHOR_FRAMES`)
    at ``noise`` (mm, as its records key it)."""
    return f"{ANCHOR_FRAMES[frame]}, sigma {noise} mm"


def _with_ratio_of_means(means: dict[str, float]) -> dict[str, float]:
    """``means`` with ``asd_ratio`` set to mean ASD-O / mean ASD-V, the ratio of the means, as
    the paper's table reports it."""
    return {**means, "asd_ratio": means["asd_o_mm"] / max(means["asd_v_mm"], 1e-9)}


def summarise_sweep(rows: list[dict]) -> dict:
    """Mean ASD-V, ASD-O and CSD per (k, n_sigma)."""
    table: dict = {}
    for k in SWEEP_K:
        for n_sigma in SWEEP_N_SIGMA:
            chosen = [r for r in rows if r["k"] == k and r["n_sigma"] == n_sigma]
            if chosen:
                table[f"{k}/{n_sigma}"] = {
                    m: statistics.fmean(r[m] for r in chosen)
                    for m in ("asd_v_mm", "asd_o_mm", "csd_mm")
                }
    return table


def to_markdown(results: dict) -> str:
    """The report: Table 1 per mask source, CSD vs the fit, the sweep (Table 2)."""
    lines = [
        "# Stage-2 diversity on synthetic occluded faces",
        "",
        results["description"],
        "",
    ]
    for mask_name, groups in results["table1"].items():
        lines += [
            f"## Table 1, {mask_name}: ASD-V / ASD-O (mm) and ASD-O/ASD-V",
            "",
        ]
        lines += _method_table(
            groups,
            lambda figures: (
                f"{figures['asd_v_mm']:.2f} / {figures['asd_o_mm']:.2f} / "
                f"**{figures['asd_ratio']:.2f}**"
            ),
            with_faces=True,
        )
        lines += [
            "",
            f"CSD (mm, truly occluded vertices) against the single fit's error, {mask_name}. "
            "References: the oracle's posterior mean's error and its best N samples' CSD "
            "(it sees the truly visible vertices; d3dface.bench.csd_bound); the fit-error "
            "model's bias-corrected fit and its best N samples around the fit (it knows the "
            "distribution of this fit's errors on the hidden vertices with this kind of "
            "occluder; d3dface.bench.fit_error_model):",
            "",
        ]
        references = [k for k in REFERENCE_KEYS if k in groups["overall"]]
        lines += [
            "| occlusion | single fit (its error where visible) | "
            + " | ".join([*METHODS, *(REFERENCE_KEYS[k] for k in references)])
            + " |",
            "| --- | --- |" + " --- |" * (len(METHODS) + len(references)),
        ]
        for group, entry in groups.items():
            cells = [f"{entry[m]['csd_mm']:.2f}" for m in METHODS]
            cells += [f"{entry[k]:.2f}" for k in references]
            lines.append(
                f"| {group} | {entry['fit_occluded_mm']:.2f} ({entry['fit_visible_mm']:.2f}) | "
                + " | ".join(cells)
                + " |"
            )
        lines += [
            "",
            f"Directions, {mask_name}: the largest cosine between the fit's error and a "
            "sample's offset from the fit on the truly occluded vertices, and the CSD (mm) if "
            "every offset kept its direction but had its best length "
            "(d3dface.bench.offset_directions). A CSD 30% below the fit's error needs a "
            f"cosine of {required_cosine(0.3):.2f} or more, whatever the lengths:",
            "",
        ]
        lines += _method_table(
            groups,
            lambda figures: f"{figures['best_cosine']:.2f} / {figures['csd_best_length_mm']:.2f}",
            with_faces=False,
        )
        overall = groups.get("overall")
        if overall:
            lines += ["", *_anchored_table(mask_name, overall)]
            lines += ["", *_gains_table(mask_name, overall)]
            seconds = ", ".join(f"{m} {overall[m]['seconds']:.1f} s" for m in METHODS)
            lines += ["", f"Seconds per face and method: {seconds}.", ""]
    if results["table2"]:
        lines += [
            "## Table 2: ours at each k (rows) and n_sigma (columns), true masks",
            "",
        ]
        for metric, title in (("asd_v_mm", "ASD-V"), ("asd_o_mm", "ASD-O"), ("csd_mm", "CSD")):
            lines += [
                f"{title} (mm):",
                "",
                "| k \\ n_sigma | " + " | ".join(f"{n:g}" for n in SWEEP_N_SIGMA) + " |",
                "| --- |" + " --- |" * len(SWEEP_N_SIGMA),
            ]
            for k in SWEEP_K:
                cells = [
                    f"{results['table2'][f'{k}/{n}'][metric]:.2f}"
                    if f"{k}/{n}" in results["table2"]
                    else "-"
                    for n in SWEEP_N_SIGMA
                ]
                lines.append(f"| {k:g} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def _anchored_table(mask_name: str, overall: dict) -> list[str]:
    """Markdown: the anchored oracle in each frame at each noise beside Global+DPP and ours,
    all faces."""

    def row(name: str, figures: dict[str, float], guess: str, best: float) -> str:
        return (
            f"| {name} | {figures['asd_v_mm']:.2f} | {figures['asd_o_mm']:.2f} | "
            f"{figures['asd_ratio']:.1f} | {guess} | {best:.2f} | "
            f"{100.0 * overall['gains'][name]['gain']:.1f}% |"
        )

    lines = [
        f"Agreement against nearness, {mask_name}, all faces: the anchored oracle knows the "
        "faces' prior exactly and observes what the methods hold to, the fit's visible "
        "vertices (aligned to the truth), with noise sigma per coordinate; its samples are its "
        "posterior mean plus the best N-point set of its posterior on the occluded vertices "
        "(d3dface.bench.csd_bound.anchored_oracle). A larger sigma lets the samples leave the "
        "fit where the face is visible (ASD-V). In the fit's frame, it observes the fit as it "
        "is, as the methods do, and its samples are aligned to the truth as theirs are: what "
        "the exact prior gains without knowing the truth's frame. Gain = 1 - CSD / the fit's "
        f"error ({overall['fit_occluded_mm']:.2f} mm):",
        "",
        "| samples | ASD-V | ASD-O | ratio | single guess | CSD | gain |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method in ("Global+DPP", "ours"):
        lines.append(row(method, overall[method], "-", overall[method]["csd_mm"]))
    for frame in ANCHOR_FRAMES:
        for noise, figures in overall[frame].items():
            guess = f"{figures['posterior_mean_mm']:.2f}"
            title = _anchored_title(frame, noise)
            lines.append(row(title, figures, guess, figures["best_set_mm"]))
    return lines


def _gains_table(mask_name: str, overall: dict) -> list[str]:
    """Markdown: every method's and reference's gain over the fit in distance and in squared
    distance (the paper's MSE), all faces."""
    lines = [
        f"Gain over the fit in two units, {mask_name}, all faces: in distance, "
        "1 - mean CSD / mean fit error (the project's unit), and in squared distance, "
        "1 - mean CSD^2 / mean fit error^2 (the mean squared error, the measure the paper's "
        "headline names: a closest sample with about "
        f"{100 * PAPER_MSE_GAIN:.0f}% lower MSE than single reconstructions by earlier methods; "
        f"that is {100 * distance_gain_of(PAPER_MSE_GAIN):.1f}% in distance, and 30% in "
        f"distance is {100 * mse_gain_of(0.3):.0f}% in MSE):",
        "",
        "| samples | gain in distance | gain in MSE |",
        "| --- | --- | --- |",
    ]
    for name, figures in overall["gains"].items():
        lines.append(
            f"| {name} | {100 * figures['gain']:.1f}% | {100 * figures['mse_gain']:.1f}% |"
        )
    return lines


def _method_table(groups: dict, cell: Callable[[dict], str], with_faces: bool) -> list[str]:
    """Markdown rows of a table with a row per occlusion group and a column per method; each
    cell is ``cell`` of that method's summary figures (and a column of face counts)."""
    faces = " faces |" if with_faces else ""
    lines = [
        f"| occlusion |{faces} " + " | ".join(METHODS) + " |",
        "| --- |" + " --- |" * (len(METHODS) + with_faces),
    ]
    for group, entry in groups.items():
        count = f" {entry['faces']} |" if with_faces else ""
        cells = [cell(entry[method]) for method in METHODS]
        lines.append(f"| {group} |{count} " + " | ".join(cells) + " |")
    return lines


def write_plots(results: dict, out_dir: Path) -> list[str]:
    """``diversity_ratio.png`` (ratio per method and occlusion) and ``diversity_sweep.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    table = results["table1"].get("true mask", {})
    if table:
        groups = list(table)
        figure, axis = plt.subplots(figsize=(7, 3.5))
        width = 0.8 / len(METHODS)
        for offset, method in enumerate(METHODS):
            values = [table[g][method]["asd_ratio"] for g in groups]
            positions = np.arange(len(groups)) + offset * width
            axis.bar(positions, values, width, label=method)
        axis.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups)
        axis.set_ylabel("ASD-O / ASD-V")
        axis.set_title("Diversity where hidden over consistency where seen (true masks)")
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out_dir / "diversity_ratio.png", dpi=120)
        plt.close(figure)
        names.append("diversity_ratio.png")
    if results["table2"]:
        figure, axes = plt.subplots(1, 2, figsize=(8, 3.5))
        for axis, (metric, title) in zip(
            axes, (("asd_v_mm", "ASD-V (mm)"), ("asd_o_mm", "ASD-O (mm)")), strict=True
        ):
            grid = np.array(
                [[results["table2"][f"{k}/{n}"][metric] for n in SWEEP_N_SIGMA] for k in SWEEP_K]
            )
            shown = axis.imshow(grid, cmap="viridis")
            axis.set_xticks(range(len(SWEEP_N_SIGMA)), [f"{n:g}" for n in SWEEP_N_SIGMA])
            axis.set_yticks(range(len(SWEEP_K)), [f"{k:g}" for k in SWEEP_K])
            axis.set_xlabel("n_sigma")
            axis.set_ylabel("k")
            axis.set_title(title)
            figure.colorbar(shown, ax=axis)
        figure.tight_layout()
        figure.savefig(out_dir / "diversity_sweep.png", dpi=120)
        plt.close(figure)
        names.append("diversity_sweep.png")
    return names


def add_fit_iterations_argument(parser: argparse.ArgumentParser, quick_iterations: int) -> None:
    """``--fit-iterations N`` on ``parser``, whose ``--quick`` fits ``quick_iterations`` long."""
    parser.add_argument(
        "--fit-iterations",
        type=int,
        help=f"stage-1 fitting iterations ({DEFAULT_FIT_ITERATIONS}; quick {quick_iterations})",
    )


def chosen_fit_settings(args: argparse.Namespace, quick_iterations: int) -> FitSettings:
    """The stage-1 settings that ``--fit-iterations`` and ``--quick`` in ``args`` ask for."""
    iterations = args.fit_iterations
    if iterations is None:
        iterations = quick_iterations if args.quick else DEFAULT_FIT_ITERATIONS
    return FitSettings(iterations=iterations)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write ``diversity.json`` / ``diversity.md`` and the plots."""
    parser = argparse.ArgumentParser(prog="python -m d3dface.bench diversity")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 faces, 50 fitting and 20 diversity iterations, no sweep (a smoke test)",
    )
    parser.add_argument("--faces", type=int, help="number of faces (default 12)")
    parser.add_argument("--samples", type=int, help="samples per face and method, N (8)")
    parser.add_argument("--iterations", type=int, help="diversity iterations")
    add_fit_iterations_argument(parser, QUICK_FIT_ITERATIONS)
    parser.add_argument(
        "--photometric-size", type=int, help="photometric render side in px (0: term off)"
    )
    parser.add_argument("--sweep-faces", type=int, help="faces in the k x n_sigma sweep (3)")
    parser.add_argument("--no-auto-mask", action="store_true", help="true masks only")
    parser.add_argument(
        "--reference-faces",
        type=int,
        help=f"held-out fits for the fit-error reference ({REFERENCE_FACES}; quick 6; 0: none)",
    )
    add_out_argument(parser)
    args = parser.parse_args(argv)
    args.out = output_folder(args.out, args.quick, RESULTS_DIR)
    settings = DiversitySettings()
    fit_settings = chosen_fit_settings(args, QUICK_FIT_ITERATIONS)
    fit_iterations = fit_settings.iterations
    if args.quick:
        settings = replace(settings, iterations=20)
    if args.samples is not None:
        settings = replace(settings, n_samples=args.samples)
    if args.iterations is not None:
        settings = replace(settings, iterations=args.iterations)
    if args.photometric_size is not None:
        settings = replace(settings, photometric_size=args.photometric_size)
    n_faces = args.faces or (2 if args.quick else 12)
    sweep_faces = args.sweep_faces if args.sweep_faces is not None else (0 if args.quick else 3)
    reference_faces = args.reference_faces
    if reference_faces is None:
        reference_faces = 6 if args.quick else REFERENCE_FACES
    model = FaceModel.from_pretrained(CHECKPOINTS_DIR / "face_model")
    vae = MeshVAE.from_pretrained(CHECKPOINTS_DIR / "mesh_vae_lite").eval().requires_grad_(False)
    clock = time.perf_counter()
    auto_mask = not args.no_auto_mask
    results = run(
        model, vae, n_faces, settings, sweep_faces, auto_mask, True, fit_settings, reference_faces
    )
    results["settings"] = asdict(settings)
    results["seconds"] = time.perf_counter() - clock
    results["threads"] = torch.get_num_threads()
    results["description"] = (
        f"{n_faces} renders of the face model (seeds {FIRST_SEED}+), occluders in turn "
        f"{', '.join(f'{k} ({v})' for k, v in OCCLUDERS.items())}; N = {settings.n_samples}, "
        f"k = {settings.k}, n_sigma = {settings.n_sigma}, {settings.iterations} iterations "
        f"({fit_iterations} in the stage-1 fit); "
        f"{results['skipped']} runs skipped (no face found or nothing occluded); fit-error "
        f"reference learned on {reference_faces} held-out fits (seeds {REFERENCE_FIRST_SEED}+; "
        "those with the face's kind of occluder, on its hidden vertices); "
        f"{results['threads']} torch threads, load average {os.getloadavg()[0]:.2f}. "
        "ASD / CSD in mm; ratio = mean ASD-O / mean ASD-V."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results["plots"] = write_plots(results, args.out)
    write_results(args.out, "diversity", results, to_markdown(results))
    print(to_markdown(results))
    return 0


def _progress_line(count: int, record: dict) -> str:
    """One line per face: its type and each method's ratio and CSD."""
    parts = [f"{m} {record[m]['asd_ratio']:.1f}x csd {record[m]['csd_mm']:.2f}" for m in METHODS]
    return (
        f"[{count}] seed {record['seed']} {record['occlusion']} ({record['mask']}): fit "
        f"{record['fit_occluded_mm']:.2f} mm; " + "; ".join(parts)
    )
