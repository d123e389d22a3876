"""The whole method in one call: photo -> fitted face -> N diverse completions.

>>> from d3dface import Diverse3DFace
>>> pipe = Diverse3DFace.from_pretrained()            # the shipped weights (or a Hub repo id)
>>> result = pipe("photo.jpg", n=8, k=0.5, n_sigma=3, seed=0)
>>> result.samples.shape                              # (8, V, 3) metres
>>> result.save("out/")                               # meshes, pictures, metrics.json

Stages (each reported to ``progress``): face and landmark detection, occlusion mask (the
user's, or found automatically by :mod:`d3dface.perception.occlusion`), stage-1 fitting
(:mod:`d3dface.fitting`) and stage-2 diversity (:mod:`d3dface.diversity`) in the Mesh-VAE's
latent space.

A pipeline directory holds ``config.json`` (kind ``d3dface.pipeline``) naming the folders of
its two models, e.g. ``{"face_model": "face_model", "mesh_vae": "mesh_vae_lite"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from d3dface.diversity import (
    CompletionTarget,
    DiversitySettings,
    diversify,
    interpolate,
)
from d3dface.facemodel.model import FaceModel
from d3dface.figures import vertex_spread_mm
from d3dface.fitting import FitResult, FitSettings, fit_face
from d3dface.hub import (
    CHECKPOINTS_DIR,
    CONFIG_NAME,
    FORMAT_VERSION,
    PIPELINE_KIND,
    ModelFiles,
    WeightsError,
    fetch_pipeline_models,
)
from d3dface.imageio import ImageSource, load_image
from d3dface.latent_spaces import VAESpace
from d3dface.metrics import diversity_metrics
from d3dface.out_folder import check_out_folder
from d3dface.overlay import head_faces
from d3dface.perception.landmarks import ChosenFace, LandmarkDetector, choose_face
from d3dface.perception.occlusion_mask import check_user_mask
from d3dface.perception.working_size import working_photo
from d3dface.torch_state import torch_as_written
from d3dface.vae.model import MeshVAE

__all__ = [
    "MASK_METHODS",
    "PIPELINE_KIND",
    "Diverse3DFace",
    "FaceResult",
    "ProgressCallback",
    "run_settings",
]

MASK_METHODS = ("auto", "model", "facexlib", "none")
"""How :meth:`Diverse3DFace.__call__` finds the mask when none is given (``"none"``: assume
nothing is hidden)."""

ProgressCallback = Callable[[float, str], Any]
"""``progress(fraction in [0, 1], description)``; a ``gradio.Progress`` fits."""

_STAGE_SHARE = {"detect": 0.05, "mask": 0.1, "fit": 0.45, "diversity": 1.0}
"""Fraction of the run done when each stage ends (for progress reports)."""


@dataclass(frozen=True, eq=False, repr=False)
class FaceResult:
    """Everything one run produced.

    Attributes:
        photo: (h, w, 3) uint8 RGB, the photo as worked on: as loaded (EXIF rotation
            applied), shrunk when the face is larger than
            :data:`~d3dface.perception.working_size.MAX_FACE_SIDE` pixels.
        photo_size: the given photo's (H, W); ``mask.png`` is written at this size.
        mask: (h, w) bool, True where the face is hidden. mask_source: ``"user"``,
            ``"none"`` (no occlusion assumed) or the automatic method's name. mask_notes: the
            automatic segmentation's remarks for the user (nothing found hidden, a fallback).
        fit: the stage-1 fit (its ``visibility`` classes the vertices).
        target: the vertex sets and view stage 2 used.
        samples: (N, V, 3) the completions, model space, metres.
        codes: (N, D) their latent codes.
        spread_mm: (V,) per-vertex spread of the samples (RMS distance to their mean), mm.
        metrics: ASD-V, ASD-O (mm) and their ratio: ``asd_v_mm``, ``asd_o_mm``, ``asd_ratio``
            (empty for N = 1, or when no vertex is hidden or none is visible).
        timings: seconds per stage and ``total``.
        settings: the diversity settings used.
        faces: (F, 3) the mesh's triangles. head_faces: (F', 3) those of the head without
            the neck (:func:`d3dface.overlay.head_faces`), for pictures.
        space: the latent space of the codes (decodes interpolations).
        face: which face of the given photo this is, and how many it has (landmarks in the
            given photo's pixels).
    """

    photo: np.ndarray
    photo_size: tuple[int, int]
    mask: np.ndarray
    mask_source: str
    mask_notes: tuple[str, ...]
    fit: FitResult
    target: CompletionTarget
    samples: Tensor
    codes: Tensor
    spread_mm: Tensor
    metrics: dict[str, float]
    timings: dict[str, float]
    settings: DiversitySettings
    faces: Tensor
    head_faces: Tensor
    space: VAESpace = field(repr=False)
    face: ChosenFace = field(repr=False)

    @property
    def n_samples(self) -> int:
        """N, the number of samples."""
        return self.samples.shape[0]

    def __repr__(self) -> str:
        """One line of what was made (the arrays and tensors are in the attributes)."""
        height, width = self.photo.shape[:2]
        metrics = {name: round(value, 3) for name, value in self.metrics.items()}
        return (
            f"FaceResult(samples={tuple(self.samples.shape)} metres, "
            f"face={self.face.describe()!r}, photo={width}x{height} px, "
            f"mask_source={self.mask_source!r}, metrics={metrics}, "
            f"seconds={self.timings['total']:.1f})"
        )

    def interpolate(self, first: int, second: int, t: float) -> Tensor:
        """The mesh between samples ``first`` (t = 0) and ``second`` (t = 1), (V, 3) metres:
        their latent codes blended, ``(1 - t) z_first + t z_second``, t in [0, 1]."""
        for index in (first, second):
            if not isinstance(index, Integral) or isinstance(index, bool):
                raise ValueError(f"a sample is named by a whole number, got {index!r}")
            if not 0 <= index < self.n_samples:
                raise ValueError(
                    f"sample {index} does not exist; there are {self.n_samples} "
                    f"(0 to {self.n_samples - 1})"
                )
        device = self.space.mu.device
        codes = self.codes[first].to(device), self.codes[second].to(device)
        return interpolate(self.space, *codes, t).cpu()

    def save(self, out_dir: str | Path, formats: str | Sequence[str] | None = None) -> list[Path]:
        """Write the result's files (see :func:`d3dface.result_files.write_result`); ``formats``
        ``"glb,ply,obj"`` or a sequence of such names (default: GLB and PLY)."""
        from d3dface.result_files import write_result

        return write_result(self, out_dir, formats)


def run_settings(
    n: int,
    k: float,
    n_sigma: float,
    seed: int,
    iterations: int | None = None,
    fit_iterations: int | None = None,
    mask_method: str = "auto",
    fit_settings: FitSettings | None = None,
) -> tuple[DiversitySettings, FitSettings]:
    """The settings of one :meth:`Diverse3DFace.__call__`, checked (nothing runs): its options
    over the defaults (``fit_settings``: the pipeline's; default ``FitSettings()``).

    Raises:
        ValueError: an option is out of range or not a whole number where it must be, or
            ``mask_method`` is not one of :data:`MASK_METHODS`.
    """
    settings = DiversitySettings(n_samples=n, k=k, n_sigma=n_sigma, seed=seed)
    if iterations is not None:
        settings = replace(settings, iterations=iterations)
    fit_settings = FitSettings() if fit_settings is None else fit_settings
    if fit_iterations is not None:
        fit_settings = replace(fit_settings, iterations=fit_iterations)
    if mask_method not in MASK_METHODS:
        raise ValueError(f"unknown mask_method {mask_method!r}; choose from {MASK_METHODS}")
    return settings, fit_settings


def _available(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device; ValueError when it is unknown or not on this machine."""
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"'{device}' is not a device name; use 'cpu' or 'cuda'") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device '{device}' is not available: PyTorch sees no CUDA GPU here; use 'cpu'"
        )
    if chosen.type not in ("cpu", "cuda"):
        raise ValueError(f"device '{device}' is not supported; use 'cpu' or 'cuda'")
    return chosen


class Diverse3DFace:
    """Photo -> N diverse 3D completions of the face (Diverse3DFace).

    Args:
        face_model: the global + local face model (with regions and landmark embedding).
        vae: the Mesh-VAE trained on that model's topology.
        fit_settings: stage-1 settings (default :class:`~d3dface.fitting.FitSettings`).
        detector: a landmark detector to reuse (default: the shared one).
        device: where the fit and the diversity stage run (``"cpu"``, the default, or e.g.
            ``"cuda"``); detection and the occlusion mask run on the CPU, and results
            (meshes, codes, the fit) come back on the CPU.

    Attributes:
        folders: the folder names of the two models (``face_model``, ``mesh_vae``) in a saved
            pipeline: those of the directory it was loaded from, else ``face_model`` and
            ``mesh_vae_<config name>`` (see :meth:`save_pretrained`).
    """

    def __init__(
        self,
        face_model: FaceModel,
        vae: MeshVAE,
        fit_settings: FitSettings | None = None,
        detector: LandmarkDetector | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if vae.n_vertices != face_model.n_vertices:
            raise WeightsError(
                f"the Mesh-VAE has {vae.n_vertices} vertices but the face model has "
                f"{face_model.n_vertices}; they must share one topology"
            )
        self.device = _available(device)
        self.face_model = face_model.to(self.device).eval()
        self.vae = vae.to(self.device).eval().requires_grad_(False)
        self.fit_settings = fit_settings or FitSettings()
        self.head_faces = head_faces(self.face_model).cpu()
        self.detector = detector
        self.folders = {"face_model": "face_model", "mesh_vae": f"mesh_vae_{vae.config.name}"}

    @classmethod
    @torch_as_written()
    def from_pretrained(
        cls,
        path_or_repo: str | Path = CHECKPOINTS_DIR,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        token: str | None = None,
        vae: str | None = None,
        device: str | torch.device = "cpu",
        force_download: bool = False,
        subfolder: str | None = None,
    ) -> Diverse3DFace:
        """Load a pipeline directory (default: the shipped ``checkpoints/``) or Hub repo id
        (``subfolder``: the pipeline's folder inside it, when it is not at the top).

        ``vae`` names another Mesh-VAE folder of the same directory (e.g. ``mesh_vae_paper``);
        ``device`` is where it runs (see the class); ``force_download`` fetches a Hub repo's
        files again even when they are cached (to replace a corrupt cached file).
        An unavailable device (``"cuda"`` without a GPU) raises a ValueError naming it.
        Of a Hub repo, the ``config.json`` is fetched first, then only the two models' folders
        (a repo may hold other Mesh-VAEs). Raises WeightsError when the directory or a model in
        it is missing or unusable.
        """
        fetch = ModelFiles(path_or_repo, revision, cache_dir, token, subfolder, force_download)
        directory, config = fetch.config(PIPELINE_KIND)
        directory, folders = fetch_pipeline_models(fetch, config, directory, vae)
        pipeline = cls(
            FaceModel.from_pretrained(directory / folders["face_model"]),
            MeshVAE.from_pretrained(directory / folders["mesh_vae"]),
            device=device,
        )
        pipeline.folders = folders
        return pipeline

    def save_pretrained(self, directory: str | Path, vae_folder: str | None = None) -> Path:
        """Write the pipeline: ``config.json`` + the face model's and the Mesh-VAE's folders,
        each model as safetensors + config.

        The folders keep the names of the directory the pipeline was loaded from (the shipped
        layout: ``face_model/`` and ``mesh_vae_lite/``); ``vae_folder`` renames the Mesh-VAE's.
        Each model's descriptive config entries (the face model's licence notice, units and
        build settings, the Mesh-VAE's training record) are kept; build reports and
        training logs (``build_report.json``, ``training_log.json``) are not carried.
        """
        directory = check_out_folder(directory, "directory")
        folders = {**self.folders, "mesh_vae": vae_folder or self.folders["mesh_vae"]}
        self.face_model.save_pretrained(directory / folders["face_model"])
        self.vae.save_pretrained(directory / folders["mesh_vae"])
        config = {
            "format_version": FORMAT_VERSION,
            "kind": PIPELINE_KIND,
            "face_model": folders["face_model"],
            "mesh_vae": folders["mesh_vae"],
            "n_vertices": self.face_model.n_vertices,
        }
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @torch_as_written()
    def __call__(
        self,
        image: ImageSource,
        mask: np.ndarray | str | Path | bytes | None = None,
        n: int = 8,
        k: float = 0.5,
        n_sigma: float = 3.0,
        seed: int = 0,
        iterations: int | None = None,
        fit_iterations: int | None = None,
        face_index: int = 0,
        mask_method: str = "auto",
        progress: ProgressCallback | None = None,
    ) -> FaceResult:
        """Reconstruct one face of a photo as ``n`` diverse completions.

        Runs the same inside ``torch.no_grad()`` or ``torch.inference_mode()`` and after
        ``torch.set_default_dtype(torch.float64)`` (the fit and stage 2 need gradients and
        float32; the caller's settings are given back); the result's tensors are float32.

        Args:
            image: a path, bytes, PIL image or (H, W[, C]) array in RGB order (OpenCV's
                ``cv2.imread`` gives BGR: ``cv2.cvtColor(image, cv2.COLOR_BGR2RGB)``; see
                :func:`d3dface.imageio.load_image`).
            mask: the occlusion mask, an (H, W) array (nonzero = hidden; a float one: at
                least 0.5) or an image file (path or bytes) of the photo's size (white =
                hidden); None finds it automatically.
            n: number of completions (1-64). k, n_sigma: DPP settings (see
                :class:`~d3dface.diversity.DiversitySettings`). seed: seeds every random step.
            iterations: diversity iterations (default: DiversitySettings').
            fit_iterations: stage-1 iterations (default: the pipeline's fit settings').
            face_index: which face (0 = the largest).
            mask_method: the automatic segmentation's method when ``mask`` is None, one of
                :data:`MASK_METHODS` (``"none"``: assume nothing is hidden).
            progress: called with (fraction, stage description) as stages start.

        Raises:
            ImageError / NoFaceError (ValueError): bad image, no face; ValueError: bad
            settings or mask.
        """
        settings, fit_settings = run_settings(
            n, k, n_sigma, seed, iterations, fit_iterations, mask_method, self.fit_settings
        )
        # not ``progress or ...``: a gr.Progress is falsy (it has a length, 0 before a run)
        report = progress if progress is not None else (lambda fraction, text: None)
        timings: dict[str, float] = {}
        start = clock = time.perf_counter()

        report(0.0, "detecting the face")
        given = load_image(image)
        user_mask = self._user_mask(mask, given)
        face = choose_face(given, face_index, self.detector)
        work = working_photo(given, face.landmarks, user_mask)
        photo, landmarks = work.photo, work.landmarks
        timings["detect"] = time.perf_counter() - clock

        clock = time.perf_counter()
        report(_STAGE_SHARE["detect"], "finding the occluded part")
        occlusion, source, notes = self._occlusion(photo, work.mask, landmarks, mask_method)
        timings["mask"] = time.perf_counter() - clock

        clock = time.perf_counter()
        report(_STAGE_SHARE["mask"], "fitting the 3D face to the visible part")
        fit = fit_face(photo, self.face_model, occlusion, landmarks, settings=fit_settings)
        timings["fit"] = time.perf_counter() - clock

        clock = time.perf_counter()
        report(_STAGE_SHARE["fit"], f"generating {n} diverse completions")
        target = CompletionTarget.from_fit(fit, self.face_model, settings.photometric_size)
        on_device = target.to(self.device)
        space = VAESpace(self.vae, on_device.fitted, on_device.occluded)
        completions = diversify(space, on_device, self.face_model.faces, settings)
        timings["diversity"] = time.perf_counter() - clock
        timings["total"] = time.perf_counter() - start
        report(1.0, "done")

        samples = completions.vertices.cpu()
        metrics: dict[str, float] = {}
        if n > 1 and bool(target.visible.any()) and bool(target.occluded.any()):
            metrics = diversity_metrics(samples, target.visible, target.occluded)
        return FaceResult(
            photo=photo,
            photo_size=work.original_size,
            mask=occlusion,
            mask_source=source,
            mask_notes=notes,
            fit=fit,
            target=target,
            samples=samples,
            codes=completions.codes.cpu(),
            spread_mm=vertex_spread_mm(samples),
            metrics=metrics,
            timings={name: round(seconds, 3) for name, seconds in timings.items()},
            settings=settings,
            faces=self.face_model.faces.cpu(),
            head_faces=self.head_faces,
            space=space,
            face=face,
        )

    @staticmethod
    def _user_mask(
        mask: np.ndarray | str | Path | bytes | None, photo: np.ndarray
    ) -> np.ndarray | None:
        """The user's mask as (H, W) bool, or None (see :func:`check_user_mask`)."""
        return None if mask is None else check_user_mask(mask, photo.shape)

    def _occlusion(
        self, photo: np.ndarray, user_mask: np.ndarray | None, landmarks: Any, method: str
    ) -> tuple[np.ndarray, str, tuple[str, ...]]:
        """The occlusion mask (H, W) bool, where it came from and the segmentation's notes."""
        if user_mask is not None:
            return user_mask, "user", ()
        if method == "none":
            return np.zeros(photo.shape[:2], bool), "none", ()
        from d3dface.perception.occlusion import segment_occlusion

        found = segment_occlusion(
            photo, self.face_model, landmarks=landmarks, method=method, detector=self.detector
        )
        return found.mask, found.source, found.notes
