"""``python -m d3dface.bench vae [--quick]``: the Mesh-VAE against a PCA of the same size.

On held-out meshes of the face model (their own seed stream, apart from training and
validation), with rectangular XY masks hiding up to 40% of the vertices as in training:

- reconstruction: every vertex shown; VAE = decode(mu(encode(mesh))), PCA = projection onto
  the leading components;
- masked completion: only the visible vertices shown; VAE = decode(mu(encode(mesh, mask))),
  PCA = the Gaussian conditional mean of the coefficients given the visible coordinates
  (the best linear completion under the PCA's own prior);
- speed: decode of 16 latents + backward to the latents (the stage-2 inner step), CPU.

Errors are mean per-vertex Euclidean distances in millimetres. The PCA has as many components
as the VAE's latent has numbers (capped by the data's rank), fitted on meshes drawn like the
training data.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from d3dface.bench import add_out_argument, output_folder, write_results
from d3dface.facemodel.model import FaceModel
from d3dface.hub import CHECKPOINTS_DIR
from d3dface.vae.data import DataConfig, FaceMeshSampler, seeded_generator
from d3dface.vae.model import MeshVAE

MM = 1000.0
RESULTS_DIR = CHECKPOINTS_DIR.parent / "bench" / "results"
OBSERVATION_NOISE_M = 1e-4  # PCA completion: visible coordinates trusted to 0.1 mm


@dataclass(frozen=True)
class PCABaseline:
    """``mean`` (V*3,), ``components`` (K, V*3) orthonormal rows, ``variance`` (K,)."""

    mean: Tensor
    components: Tensor
    variance: Tensor

    @staticmethod
    def fit(meshes: Tensor, n_components: int) -> PCABaseline:
        """PCA of (N, V, 3) meshes keeping at most ``n_components`` (and the data's rank)."""
        flat = meshes.reshape(len(meshes), -1).double()
        mean = flat.mean(dim=0)
        _, singular, right = torch.linalg.svd(flat - mean, full_matrices=False)
        variance = singular**2 / (len(meshes) - 1)
        keep = min(n_components, int((variance > variance[0] * 1e-10).sum()))
        return PCABaseline(mean, right[:keep], variance[:keep])

    def reconstruct(self, meshes: Tensor) -> Tensor:
        """Projection onto the components: (B, V, 3) -> (B, V, 3)."""
        flat = meshes.reshape(len(meshes), -1).double() - self.mean
        coefficients = flat @ self.components.T
        return (coefficients @ self.components + self.mean).reshape(meshes.shape).float()

    def complete(self, meshes: Tensor, hidden: Tensor) -> Tensor:
        """Conditional mean given the visible vertices: (B, V, 3), (B, V) bool -> (B, V, 3)."""
        completed = []
        for mesh, hide in zip(meshes, hidden, strict=True):
            shown = (~hide)[:, None].expand(-1, 3).reshape(-1)
            basis = self.components[:, shown].T  # (D_visible, K)
            residual = mesh.reshape(-1).double()[shown] - self.mean[shown]
            precision = basis.T @ basis + torch.diag(OBSERVATION_NOISE_M**2 / self.variance)
            coefficients = torch.linalg.solve(precision, basis.T @ residual)
            completed.append(coefficients @ self.components + self.mean)
        return torch.stack(completed).reshape(meshes.shape).float()


def vertex_error_mm(predicted: Tensor, target: Tensor, where: Tensor | None = None) -> float:
    """Mean per-vertex distance in mm over all vertices or the (B, V) bool selection."""
    distance = (predicted - target).norm(dim=-1)
    return float((distance[where] if where is not None else distance).mean() * MM)


def decode_backward_ms(vae: MeshVAE, n_latents: int = 16, repeats: int = 20) -> float:
    """Median wall time of decode(z) + backward to z for ``n_latents`` codes, weights frozen."""
    for parameter in vae.parameters():
        parameter.requires_grad_(False)
    z = torch.zeros(n_latents, *vae.latent_shape, requires_grad=True)
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        vae.decode(z).square().sum().backward()
        times.append(time.perf_counter() - start)
        z.grad = None
    return statistics.median(times[3:]) * 1000


def run(
    vae_dir: Path, face_model_dir: Path, n_test: int, n_fit: int, seed: int
) -> dict[str, float | int | str]:
    """All figures of the benchmark as a flat dict."""
    face_model = FaceModel.from_pretrained(face_model_dir)
    vae = MeshVAE.from_pretrained(vae_dir).eval()
    data_config = DataConfig()
    sampler = FaceMeshSampler(face_model, data_config)
    test = sampler.sample(
        n_test, data_config.max_mask_fraction, seeded_generator(seed, "benchmark")
    )
    latent_size = vae.latent_shape[0] * vae.latent_shape[1]
    pca = PCABaseline.fit(sampler.meshes(n_fit, seeded_generator(seed, "baseline")), latent_size)
    with torch.no_grad():
        vae_full = torch.cat([vae.decode(vae.encode(v[None])[0]) for v in test.vertices])
        vae_masked = torch.cat(
            [
                vae.decode(vae.encode(v[None], h[None])[0])
                for v, h in zip(test.vertices, test.hidden, strict=True)
            ]
        )
    pca_full = pca.reconstruct(test.vertices)
    pca_masked = pca.complete(test.vertices, test.hidden)
    return {
        "vae": _shown(vae_dir),
        "test_meshes": n_test,
        "hidden_fraction_mean": round(float(test.hidden.float().mean()), 3),
        "latent_size": latent_size,
        "pca_components": len(pca.variance),
        "vae_reconstruction_mm": round(vertex_error_mm(vae_full, test.vertices), 3),
        "pca_reconstruction_mm": round(vertex_error_mm(pca_full, test.vertices), 3),
        "vae_completion_hidden_mm": round(
            vertex_error_mm(vae_masked, test.vertices, test.hidden), 3
        ),
        "pca_completion_hidden_mm": round(
            vertex_error_mm(pca_masked, test.vertices, test.hidden), 3
        ),
        "vae_completion_visible_mm": round(
            vertex_error_mm(vae_masked, test.vertices, ~test.hidden), 3
        ),
        "pca_completion_visible_mm": round(
            vertex_error_mm(pca_masked, test.vertices, ~test.hidden), 3
        ),
        "decode16_backward_ms": round(decode_backward_ms(vae), 1),
        "torch_threads": torch.get_num_threads(),
    }


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def to_markdown(results: dict[str, float | int | str]) -> str:
    """A short report table."""
    return "\n".join(
        [
            "# Mesh-VAE benchmark",
            "",
            f"`{results['vae']}`, {results['test_meshes']} held-out meshes, on average "
            f"{results['hidden_fraction_mean']:.0%} of vertices hidden; PCA with "
            f"{results['pca_components']} components (VAE latent: {results['latent_size']}).",
            "",
            "| mean per-vertex error (mm) | Mesh-VAE | PCA |",
            "| --- | --- | --- |",
            f"| reconstruction, all shown | {results['vae_reconstruction_mm']} | "
            f"{results['pca_reconstruction_mm']} |",
            f"| completion, hidden vertices | {results['vae_completion_hidden_mm']} | "
            f"{results['pca_completion_hidden_mm']} |",
            f"| completion, visible vertices | {results['vae_completion_visible_mm']} | "
            f"{results['pca_completion_visible_mm']} |",
            "",
            f"Decode of 16 latents + backward to the latents (CPU, "
            f"{results['torch_threads']} threads): {results['decode16_backward_ms']} ms "
            "(median of 20).",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``vae [--quick] [--vae DIR] [--out DIR]``: prints and writes vae.json / vae.md."""
    parser = argparse.ArgumentParser(prog="python -m d3dface.bench vae")
    parser.add_argument("--vae", type=Path, default=CHECKPOINTS_DIR / "mesh_vae_lite")
    parser.add_argument("--face-model", type=Path, default=CHECKPOINTS_DIR / "face_model")
    add_out_argument(parser)
    parser.add_argument("--quick", action="store_true", help="16 test meshes (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out = output_folder(args.out, args.quick, RESULTS_DIR)
    n_test, n_fit = (16, 800) if args.quick else (256, 2000)
    results = run(args.vae, args.face_model, n_test, n_fit, args.seed)
    write_results(args.out, "vae", results, to_markdown(results))
    return 0
