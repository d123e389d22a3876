"""Stand-ins for the pipeline and its result in the app's tests: a small sphere mesh in place
of a face, so a run takes milliseconds."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import trimesh
from PIL import Image

from d3dface.diversity import interpolate


class _ScaledSphere:
    """A latent space of one dimension: code c decodes to the sphere scaled by 1 + 0.05 c."""

    def __init__(self, base: torch.Tensor) -> None:
        self.base = base

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, 1) codes -> (B, V, 3) meshes."""
        return self.base[None] * (1.0 + 0.05 * codes[:, :, None])


class FakeResult:
    """What :func:`logic.reconstruct` uses of a FaceResult, on a small sphere mesh; sample i
    is latent code i of a :class:`_ScaledSphere`, so blends go through the real
    :func:`d3dface.diversity.interpolate`."""

    def __init__(self, n: int) -> None:
        sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
        base = torch.tensor(sphere.vertices, dtype=torch.float32)
        self.faces = torch.tensor(sphere.faces, dtype=torch.long)
        self.samples = torch.stack([base * (1.0 + 0.05 * i) for i in range(n)])
        self.codes = torch.arange(n, dtype=torch.float32)[:, None]
        self.head_faces = self.faces
        self.fit = SimpleNamespace(colours=torch.full((len(base), 3), 0.7))
        self.n_samples = n
        self._space = _ScaledSphere(base)

    def interpolate(self, first: int, second: int, t: float) -> torch.Tensor:
        return interpolate(self._space, self.codes[first], self.codes[second], t)

    def save(self, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
        from d3dface.meshio import export_mesh

        paths = [
            export_mesh(out_dir / f"sample_{i:02d}.{suffix}", v.numpy(), self.faces.numpy())
            for i, v in enumerate(self.samples)
            for suffix in formats
        ]
        for name in ("spread.glb",):
            paths.append(export_mesh(out_dir / name, self.samples[0].numpy(), self.faces.numpy()))
        for name in ("mask.png", "overlay.png"):
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(out_dir / name)
            paths.append(out_dir / name)
        summary = {
            "metrics": {"asd_v_mm": 0.5, "asd_o_mm": 3.0, "asd_ratio": 6.0},
            "timings_s": {"detect": 0.1, "mask": 0.2, "fit": 1.0, "diversity": 2.0, "total": 3.3},
            "settings": {"n_samples": self.n_samples, "k": 0.5, "n_sigma": 3.0, "seed": 0},
            "mask_source": "user",
            "occluded_pixel_fraction": 0.25,
        }
        (out_dir / "metrics.json").write_text(json.dumps(summary))
        return [*paths, out_dir / "metrics.json"]


class FakePipeline:
    """Records its call; returns a :class:`FakeResult`."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}

    def __call__(self, photo: np.ndarray, **kwargs: Any) -> FakeResult:
        self.kwargs = kwargs
        kwargs["progress"](0.5, "fitting")
        return FakeResult(kwargs["n"])
