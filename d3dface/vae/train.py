"""Train the Mesh-VAE on meshes sampled from the face model (``python -m d3dface train-vae``).

Loss per step, on every vertex (the target is the whole mesh, whatever the mask hid):

    L1(pred, target) + laplacian_weight * L1(Lap(pred), Lap(target)) + beta(t) * KL

with distances in millimetres, ``Lap`` the uniform graph Laplacian of the template
topology, KL summed over the code and averaged over the batch, and ``beta`` growing
linearly from 0 to ``kl_weight`` over ``kl_warmup_steps``. (With ``kl_weight = 1e-4`` and
15k coordinates this is close to the ELBO of a Laplace likelihood of scale ~0.7 mm.)
Adam, its learning rate halving every ``lr_half_life_steps`` (a function of the step alone,
so resuming or extending a run changes nothing already trained); validation after every
epoch on fixed held-out meshes (mean per-vertex error in mm on all vertices and on the
hidden ones).

``out_dir`` holds, after every epoch, the latest weights (``config.json`` +
``model.safetensors``, loadable with :meth:`MeshVAE.from_pretrained`), the optimiser state
(``optimizer.safetensors``), ``train_state.json`` (step, epoch, settings, history) and
``best/``, the weights with the lowest validation error so far. ``resume`` continues from
the last completed epoch with the same batches an uninterrupted run would have seen.

A release (what ``checkpoints/mesh_vae_lite`` holds) is a run's best weights with
``training_log.json`` (the run's state and history) and no optimiser state:
:func:`write_release` makes one from a run, and :func:`start_from_release` seeds a run folder
from one so that training continues it, with the same batches and learning-rate schedule but
Adam's moment estimates started again from zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor
from tqdm import tqdm

from d3dface.facemodel.model import FaceModel
from d3dface.hub import CHECKPOINTS_DIR, save_tensors
from d3dface.vae.data import (
    DataConfig,
    FaceMeshSampler,
    MeshBatch,
    mask_fraction_limit,
    offset_statistics,
    seeded_generator,
    validation_set,
)
from d3dface.vae.graph import UniformLaplacian
from d3dface.vae.model import CONFIGS, MeshVAE, vae_config

STATE_NAME = "train_state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
BEST_DIR = "best"
RELEASE_LOG_NAME = "training_log.json"
_WEIGHT_FILES = ("config.json", "model.safetensors")
DEFAULT_FACE_MODEL = CHECKPOINTS_DIR / "face_model"
MM = 1000.0


@dataclass(frozen=True)
class TrainSettings:
    """Schedule and loss weights of a training run."""

    epochs: int = 100
    steps_per_epoch: int = 500
    batch_size: int = 16
    learning_rate: float = 1e-3
    lr_half_life_steps: int = 15000
    laplacian_weight: float = 1.0
    kl_weight: float = 1e-4
    kl_warmup_steps: int = 5000
    n_validation: int = 256
    validation_batch: int = 64
    statistics_samples: int = 4096
    data: DataConfig = field(default_factory=DataConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        """Inverse of ``dataclasses.asdict``."""
        return cls(**{**data, "data": DataConfig(**data["data"])})


#: ``--quick``: a smoke run (< 1 min on 2 CPU cores) that writes a loadable checkpoint.
QUICK = TrainSettings(
    epochs=3,
    steps_per_epoch=40,
    batch_size=8,
    kl_warmup_steps=20,
    n_validation=16,
    validation_batch=16,
    statistics_samples=256,
    data=DataConfig(mask_ramp_epochs=2),
)


@dataclass
class TrainResult:
    """What a call to :func:`train` did.

    Attributes:
        out_dir: the checkpoint directory.
        step: optimiser steps taken in total (across resumes).
        history: one dict per completed epoch (losses, validation errors, seconds).
        step_losses: the total loss of every step taken by this call.
    """

    out_dir: Path
    step: int
    history: list[dict[str, float]]
    step_losses: list[float]


class VAELoss(torch.nn.Module):
    """Vertex L1 + Laplacian L1 (mm) + weighted KL, see the module docstring."""

    def __init__(self, faces: Tensor, n_vertices: int, settings: TrainSettings) -> None:
        super().__init__()
        self.laplacian = UniformLaplacian(faces, n_vertices)
        self.settings = settings

    def kl_beta(self, step: int) -> float:
        """KL weight at ``step``: a linear warm-up to ``kl_weight``."""
        warmup = max(1, self.settings.kl_warmup_steps)
        return self.settings.kl_weight * min(1.0, step / warmup)

    def forward(
        self, pred: Tensor, target: Tensor, mu: Tensor, logvar: Tensor, step: int
    ) -> dict[str, Tensor]:
        """pred, target: (B, V, 3) metres; mu, logvar: (B, N, C). Returns named terms."""
        vertex = (pred - target).abs().mean() * MM
        laplacian = (self.laplacian(pred) - self.laplacian(target)).abs().mean() * MM
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=(1, 2)).mean()
        total = vertex + self.settings.laplacian_weight * laplacian + self.kl_beta(step) * kl
        return {"loss": total, "vertex_mm": vertex, "laplacian_mm": laplacian, "kl": kl}


@torch.no_grad()
def validate(model: MeshVAE, batch: MeshBatch, chunk: int) -> dict[str, float]:
    """Mean per-vertex error (mm) of mean reconstructions: all vertices and hidden ones."""
    device = model.template.device
    was_training = model.training
    model.eval()
    errors = []
    for start in range(0, batch.vertices.shape[0], chunk):
        vertices = batch.vertices[start : start + chunk].to(device)
        hidden = batch.hidden[start : start + chunk].to(device)
        errors.append(((model(vertices, hidden).vertices - vertices).norm(dim=-1) * MM).cpu())
    model.train(was_training)
    error = torch.cat(errors)
    return {
        "val_all_mm": float(error.mean()),
        "val_hidden_mm": float(error[batch.hidden].mean()) if batch.hidden.any() else 0.0,
    }


def optimizer_tensors(optimizer: torch.optim.Optimizer, model: MeshVAE) -> dict[str, Tensor]:
    """Adam's per-parameter state as ``{param_name}.{key}`` tensors."""
    names = [name for name, _ in model.named_parameters()]
    return {
        f"{names[index]}.{key}": torch.as_tensor(value)
        for index, state in optimizer.state_dict()["state"].items()
        for key, value in state.items()
    }


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer,
    model: MeshVAE,
    tensors: dict[str, Tensor],
    param_groups: list[dict[str, Any]],
) -> None:
    """Inverse of :func:`optimizer_tensors`, with the param groups saved as JSON."""
    state: dict[int, dict[str, Tensor]] = {}
    for index, (name, _) in enumerate(model.named_parameters()):
        prefix = f"{name}."
        entries = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if entries:
            state[index] = entries
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def save_checkpoint(
    out_dir: Path,
    model: MeshVAE,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    is_best: bool,
) -> None:
    """Weights, optimiser and state; the state file is written last (it marks completion)."""
    training = {key: state[key] for key in ("config_name", "seed", "step", "epoch", "face_model")}
    extra = {"training": {**training, "last_epoch": state["history"][-1]}}
    model.save_pretrained(out_dir, extra_config=extra)
    if is_best:
        model.save_pretrained(out_dir / BEST_DIR, extra_config=extra)
    save_tensors(optimizer_tensors(optimizer, model), out_dir / OPTIMIZER_NAME)
    state = {**state, "param_groups": optimizer.state_dict()["param_groups"]}
    temporary = out_dir / f"{STATE_NAME}.tmp"
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.replace(out_dir / STATE_NAME)


def write_release(run_dir: str | Path, release_dir: str | Path, note: str) -> Path:
    """Copy a run's best weights into ``release_dir`` with ``training_log.json``.

    The log holds ``note`` (how the run went, e.g. where it was resumed), the run's state
    (config, seed, face model, settings, step, epoch, param groups) and its history.
    Returns the release folder.
    """
    run_dir, release_dir = Path(run_dir), Path(release_dir)
    state = json.loads((run_dir / STATE_NAME).read_text())
    history = state.pop("history")
    release_dir.mkdir(parents=True, exist_ok=True)
    for name in _WEIGHT_FILES:
        shutil.copyfile(run_dir / BEST_DIR / name, release_dir / name)
    log = {"note": note, "state": state, "history": history}
    (release_dir / RELEASE_LOG_NAME).write_text(json.dumps(log, indent=2) + "\n")
    return release_dir


def start_from_release(
    release_dir: str | Path,
    run_dir: str | Path,
    steps_per_epoch: int | None = None,
    batch_size: int | None = None,
) -> None:
    """Seed the empty ``run_dir`` with a release so that :func:`train` (``resume=True``)
    continues its run.

    The release's weights become the run's latest and best, its log's state and history the
    run's state; a release keeps no optimiser state, so Adam's moment estimates start again
    from zero (the batches and the learning-rate schedule are those of an uninterrupted run).
    ``steps_per_epoch`` and ``batch_size``, the ones the continued run will be given, are
    checked against the release's before anything is written: a run cannot change them, and
    a refused request must leave ``run_dir`` empty so that the corrected one can start.
    """
    release_dir, run_dir = Path(release_dir), Path(run_dir)
    if (run_dir / STATE_NAME).exists():
        raise FileExistsError(f"'{run_dir}' already holds a training run")
    if not (release_dir / RELEASE_LOG_NAME).is_file():
        raise FileNotFoundError(
            f"'{release_dir}' is not a released checkpoint: it has no {RELEASE_LOG_NAME} "
            "(to continue a run folder, use --resume)"
        )
    log = json.loads((release_dir / RELEASE_LOG_NAME).read_text())
    _settings_for_run(False, log["state"], None, steps_per_epoch, batch_size)
    (run_dir / BEST_DIR).mkdir(parents=True, exist_ok=True)
    for name in _WEIGHT_FILES:
        for folder in (run_dir, run_dir / BEST_DIR):
            shutil.copyfile(release_dir / name, folder / name)
    save_tensors({}, run_dir / OPTIMIZER_NAME)
    state = {**log["state"], "history": log["history"]}
    (run_dir / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")


def _settings_for_run(
    quick: bool,
    saved: dict[str, Any] | None,
    epochs: int | None,
    steps_per_epoch: int | None,
    batch_size: int | None,
) -> TrainSettings:
    """Defaults (full or quick), or the saved ones on resume, with explicit overrides."""
    if saved is None:
        settings = QUICK if quick else TrainSettings()
    else:
        settings = TrainSettings.from_dict(saved["settings"])
        for name, value in (("steps_per_epoch", steps_per_epoch), ("batch_size", batch_size)):
            if value is not None and value != getattr(settings, name):
                raise ValueError(
                    f"cannot change {name} when resuming ({getattr(settings, name)} -> {value})"
                )
    overrides = {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "batch_size": batch_size}
    return dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def new_model(config_name: str, seed: int, sampler: FaceMeshSampler, n_statistics: int) -> MeshVAE:
    """A fresh Mesh-VAE for the sampler's face model, its structure and weights from ``seed``."""
    config = vae_config(config_name)
    config = dataclasses.replace(
        config, seed=seed, structure=dataclasses.replace(config.structure, seed=seed)
    )
    mean, std = offset_statistics(sampler, n_statistics, seed)
    face_model = sampler.face_model
    return MeshVAE.from_template(config, face_model.template, face_model.faces, mean, std)


def train_step(
    model: MeshVAE,
    optimizer: torch.optim.Optimizer,
    criterion: VAELoss,
    batch: MeshBatch,
    step: int,
    noise: torch.Generator,
) -> dict[str, float]:
    """One optimiser step on a batch; returns the loss terms."""
    settings = criterion.settings
    for group in optimizer.param_groups:
        group["lr"] = settings.learning_rate * 0.5 ** (step / settings.lr_half_life_steps)
    device = model.template.device
    target = batch.vertices.to(device)
    output = model(target, batch.hidden.to(device), noise)
    terms = criterion(output.vertices, target, output.mu, output.logvar, step)
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    optimizer.step()
    return {name: float(value.detach()) for name, value in terms.items()}


def train(
    config_name: str = "lite",
    out_dir: str | Path = "checkpoints/mesh_vae",
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    batch_size: int | None = None,
    quick: bool = False,
    resume: bool = False,
    seed: int = 0,
    face_model: str | Path = DEFAULT_FACE_MODEL,
    device: str = "cpu",
    progress: bool = True,
) -> TrainResult:
    """Train (or resume training) a Mesh-VAE; see the module docstring.

    Args:
        config_name: architecture, ``lite`` or ``paper``.
        out_dir: checkpoint directory.
        epochs, steps_per_epoch, batch_size: override the defaults (``quick``: 3 x 40 x 8;
            full: 100 x 500 x 16). On resume ``epochs`` may extend the run; the others
            must match the saved run.
        quick: smoke-test settings.
        resume: continue the run in ``out_dir`` (a fresh start when it holds none); the
            saved run's config, seed, face model and settings are used.
        seed: seeds the structure, the initial weights and every data and noise draw.
        face_model: directory (or Hub id) of the face model the meshes come from.
        device: torch device for the network (data are sampled on the CPU).
        progress: show a tqdm bar.

    Returns:
        The run's step count, history and this call's step losses.
    """
    out_dir = Path(out_dir)
    state_path = out_dir / STATE_NAME
    if state_path.exists() and not resume:
        raise FileExistsError(f"'{out_dir}' already holds a training run; pass resume=True")
    saved = json.loads(state_path.read_text()) if resume and state_path.exists() else None
    settings = _settings_for_run(quick, saved, epochs, steps_per_epoch, batch_size)
    if saved is not None:
        config_name, seed, face_model = saved["config_name"], saved["seed"], saved["face_model"]
    source = FaceModel.from_pretrained(face_model)
    sampler = FaceMeshSampler(source, settings.data)
    if saved is None:
        model = new_model(config_name, seed, sampler, settings.statistics_samples)
    else:
        model = MeshVAE.from_pretrained(out_dir)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    step, history = 0, []
    if saved is not None:
        load_optimizer_tensors(
            optimizer, model, load_file(str(out_dir / OPTIMIZER_NAME)), saved["param_groups"]
        )
        step, history = saved["step"], saved["history"]
    best = min((entry["val_all_mm"] for entry in history), default=float("inf"))
    criterion = VAELoss(source.faces, source.n_vertices, settings).to(device)
    validation = validation_set(sampler, settings.n_validation, seed)
    state = {
        "config_name": config_name,
        "seed": seed,
        "face_model": str(face_model),
        "settings": dataclasses.asdict(settings),
    }
    step_losses: list[float] = []
    bar = tqdm(
        total=settings.epochs * settings.steps_per_epoch,
        initial=step,
        disable=not progress,
        desc=f"mesh-vae {config_name}",
    )
    for epoch in range(step // settings.steps_per_epoch, settings.epochs):
        started = time.perf_counter()
        max_fraction = mask_fraction_limit(epoch, settings.data)
        sums: dict[str, float] = {}
        for _ in range(settings.steps_per_epoch):
            batch = sampler.sample(
                settings.batch_size, max_fraction, seeded_generator(seed, "train", step)
            )
            noise = seeded_generator(seed, "noise", step)
            values = train_step(model, optimizer, criterion, batch, step, noise)
            step += 1
            step_losses.append(values["loss"])
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
            bar.update()
            bar.set_postfix(
                loss=f"{values['loss']:.3f}", l1_mm=f"{values['vertex_mm']:.3f}", epoch=epoch
            )
        entry = {
            "epoch": epoch + 1,
            "step": step,
            "max_mask_fraction": max_fraction,
            **{f"train_{name}": total / settings.steps_per_epoch for name, total in sums.items()},
            **validate(model, validation, settings.validation_batch),
            "seconds": time.perf_counter() - started,
        }
        history.append(entry)
        bar.write(
            f"epoch {epoch + 1}/{settings.epochs}: loss {entry['train_loss']:.3f}, "
            f"val {entry['val_all_mm']:.3f} mm all, {entry['val_hidden_mm']:.3f} mm hidden"
        )
        state.update(step=step, epoch=epoch + 1, history=history)
        save_checkpoint(out_dir, model, optimizer, state, is_best=entry["val_all_mm"] < best)
        best = min(best, entry["val_all_mm"])
    bar.close()
    return TrainResult(out_dir, step, history, step_losses)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``train-vae --config lite|paper --out DIR [--quick] [--resume] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m d3dface train-vae",
        description="Train the Mesh-VAE on face-model meshes.",
    )
    parser.add_argument(
        "--config", choices=sorted(CONFIGS), default="lite", help="architecture (default lite)"
    )
    parser.add_argument("--out", required=True, help="checkpoint directory")
    parser.add_argument("--quick", action="store_true", help="a < 1 min smoke run")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--from-release",
        help="continue a released checkpoint (a folder with training_log.json): seeds the "
        "empty --out with it, then resumes (optimiser moments start from zero)",
    )
    parser.add_argument(
        "--release-to", help="after training, copy the best weights and training_log.json here"
    )
    parser.add_argument("--note", default="", help="the release log's note (with --release-to)")
    parser.add_argument("--epochs", type=int, help="total epochs (default 100; quick 3)")
    parser.add_argument("--steps-per-epoch", type=int, help="default 500; quick 40")
    parser.add_argument("--batch-size", type=int, help="default 16; quick 8")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--face-model",
        default=str(DEFAULT_FACE_MODEL),
        help="face model whose meshes it trains on (default: the shipped checkpoints/face_model)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Train as the parsed command line asks; release the result when asked."""
    if args.from_release:
        start_from_release(args.from_release, args.out, args.steps_per_epoch, args.batch_size)
    result = train(
        config_name=args.config,
        out_dir=args.out,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        quick=args.quick,
        resume=args.resume or bool(args.from_release),
        seed=args.seed,
        face_model=args.face_model,
        device=args.device,
    )
    if args.release_to:
        write_release(result.out_dir, args.release_to, args.note)
    last = result.history[-1] if result.history else {}
    print(json.dumps({"out": str(result.out_dir), "step": result.step, **last}, indent=2))
    return 0
