"""``python -m d3dface build-model``: derive the project's face model from the ICT Face Model.

Steps: decimate the topology (face + head/neck + eyeballs, every vertex an ICT vertex), carry
the identity and expression modes over (centimetres -> metres), label regions, fit the
per-region local PCAs on sampled meshes, compute the mediapipe landmark embedding from renders,
measure it on held-out renders, and save safetensors + config.json + build_report.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from d3dface.facemodel.ict import CM_TO_M, ICT_LICENCE, build_topology, load_ict
from d3dface.facemodel.landmark_embedding import (
    RENDER_SIZE,
    appearance_pattern,
    compute_landmark_embedding,
    reprojection_error,
)
from d3dface.facemodel.local import fit_local_models
from d3dface.facemodel.model import FaceModel
from d3dface.facemodel.regions import REGION_NAMES, hard_labels, soft_weights
from d3dface.facemodel.sampling import sample_global_coefficients
from d3dface.perception.landmarks import LandmarkDetector

ICT_FACE_AREA_VERTICES = 9409  # ICT vertices 0..9408 are the facial surface
# Seeds: landmark renders and held-out renders use disjoint generators; training code for the
# Mesh-VAE and the benchmarks must not reuse these.
EMBEDDING_SEED = 1_000
HELDOUT_SEED = 2_000


@dataclass(frozen=True)
class BuildSettings:
    """Knobs of the build; the defaults make the shipped model, ``quick()`` a fast test build."""

    face_head_faces: int = 9000
    eyeball_faces: int = 480
    region_smoothing: int = 4
    n_local: int = 16
    local_samples: int = 5000
    landmark_renders: int = 300
    heldout_renders: int = 100
    seed: int = 0

    @staticmethod
    def quick() -> BuildSettings:
        return BuildSettings(local_samples=500, landmark_renders=8, heldout_renders=3)


@dataclass
class BuildReport:
    """What the build measured; written to ``build_report.json`` beside the weights."""

    n_vertices: int = 0
    n_faces: int = 0
    region_vertices: dict[str, int] = field(default_factory=dict)
    local_variance_kept: dict[str, float] = field(default_factory=dict)
    landmark_renders_used: int = 0
    landmark_min_observations: int = 0
    reprojection: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def build_face_model(
    ict_dir: str | Path,
    out_dir: str | Path,
    settings: BuildSettings | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build and save the default face model; returns the measurements."""
    settings = settings or BuildSettings()
    report = BuildReport()
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        report.seconds[name] = round(now - clock, 2)
        clock = now
        if progress:
            print(f"[build-model] {name}: {report.seconds[name]:.1f} s", flush=True)

    ict = load_ict(ict_dir)
    topology = build_topology(ict, settings.face_head_faces, settings.eyeball_faces)
    index = topology.source_index
    template = ict.neutral[index] * CM_TO_M
    identity_basis = ict.identity_modes[:, index] * CM_TO_M
    expression_basis = ict.expression_modes[:, index] * CM_TO_M
    lap("topology")

    eyeball_side = np.select([topology.part == 1, topology.part == 2], [1, -1], 0)
    labels = hard_labels(
        template,
        ict.neutral[ict.landmarks68] * CM_TO_M,
        index < ICT_FACE_AREA_VERTICES,
        eyeball_side,
    )
    region_weights = soft_weights(
        labels, topology.faces, len(REGION_NAMES), settings.region_smoothing
    )
    generator = torch.Generator().manual_seed(settings.seed)
    identity, expression = sample_global_coefficients(
        settings.local_samples, identity_basis.shape[0], expression_basis.shape[0], generator
    )
    local = fit_local_models(
        torch.cat([identity, expression], dim=1),
        torch.from_numpy(np.concatenate([identity_basis, expression_basis])),
        torch.from_numpy(region_weights),
        settings.n_local,
    )
    lap("regions and local models")

    model = FaceModel(
        template=torch.from_numpy(template),
        faces=torch.from_numpy(topology.faces),
        identity_basis=torch.from_numpy(identity_basis),
        expression_basis=torch.from_numpy(expression_basis),
        expression_names=ict.expression_names,
        region_weights=torch.from_numpy(region_weights),
        region_names=REGION_NAMES,
        local_basis=local.basis,
        source_index=torch.from_numpy(index),
        vertex_part=torch.from_numpy(topology.part),
        name="ict_face_model_d3dface",
    )
    pattern = torch.from_numpy(
        appearance_pattern(template, ict.neutral[ict.landmarks68] * CM_TO_M, topology.part)
    )
    with LandmarkDetector(max_num_faces=1) as detector:
        embedding = compute_landmark_embedding(
            model,
            pattern,
            detector,
            settings.landmark_renders,
            EMBEDDING_SEED + settings.seed,
            progress=progress,
        )
        model.landmark_faces = torch.from_numpy(embedding.faces)
        model.landmark_bary = torch.from_numpy(embedding.bary).float()
        lap("landmark embedding")
        heldout = reprojection_error(
            model,
            pattern,
            detector,
            settings.heldout_renders,
            HELDOUT_SEED + settings.seed,
            face_oval_landmarks(),
        )
    lap("held-out reprojection")

    report.n_vertices, report.n_faces = model.n_vertices, model.n_faces
    report.region_vertices = {name: int((labels == i).sum()) for i, name in enumerate(REGION_NAMES)}
    report.local_variance_kept = {
        name: round(float(v), 4) for name, v in zip(REGION_NAMES, local.variance_kept, strict=True)
    }
    report.landmark_renders_used = embedding.renders_used
    report.landmark_min_observations = int(embedding.observations.min())
    report.reprojection = {
        "image_px": RENDER_SIZE,
        "renders": heldout.renders,
        "median_px": round(heldout.median_px, 3),
        "mean_px": round(heldout.mean_px, 3),
        "p95_px": round(heldout.p95_px, 3),
        "median_px_without_face_oval": round(heldout.median_px_inner, 3),
    }
    out_dir = Path(out_dir)
    model.save_pretrained(
        out_dir,
        extra_config={
            "licence": ICT_LICENCE,
            "units": "metres, +y up, +z out of the face",
            "n_eyeball_vertices": int((topology.part > 0).sum()),
            "build_settings": asdict(settings),
        },
    )
    (out_dir / "build_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


def face_oval_landmarks() -> np.ndarray:
    """Indices of mediapipe's face-oval (silhouette) landmarks."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    return np.unique(np.array(sorted(FACEMESH_FACE_OVAL)).ravel())
