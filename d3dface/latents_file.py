"""A result's latent codes on disk (``latents.safetensors``) and the blends decoded from them.

``reconstruct`` (:meth:`~d3dface.pipeline.FaceResult.save`) writes the samples' Mesh-VAE
codes beside their meshes, with the fitted mesh and the vertex sets that anchor the latent
space. :func:`write_blends` (the ``interpolate`` command) reads them back and decodes meshes
between two samples, as the app's blend slider does, long after the run: ``z(t) = (1 - t) *
z_first + t * z_second`` (paper Sec. 1.6), decoded by the same Mesh-VAE around the same fit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import Tensor

from d3dface.diversity import interpolate
from d3dface.hub import save_tensors
from d3dface.latent_spaces import VAESpace
from d3dface.meshio import export_mesh

if TYPE_CHECKING:
    from d3dface.pipeline import Diverse3DFace, FaceResult
    from d3dface.vae.model import MeshVAE

__all__ = [
    "BLEND_STEM",
    "LATENTS_NAME",
    "SavedLatents",
    "blend_shares",
    "blend_stem",
    "check_pair",
    "load_latents",
    "save_latents",
    "vae_fingerprint",
    "write_blends",
]

LATENTS_NAME = "latents.safetensors"
"""The file of a result folder that holds the samples' codes."""
KIND = "d3dface.latents"
FORMAT_VERSION = "1"
BLEND_STEM = re.compile(r"blend_\d+_\d+_\d{3}")
"""Stems of the blend meshes :func:`write_blends` writes (``blend_00_03_050``, see
:func:`blend_stem`)."""
_TENSORS = ("codes", "fitted", "occluded", "colours")


def vae_fingerprint(vae: MeshVAE) -> str:
    """Hex sha256 of every tensor of the Mesh-VAE's state, by name: whether saved codes
    belong to this Mesh-VAE."""
    digest = hashlib.sha256()
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class SavedLatents:
    """What :func:`save_latents` wrote.

    Attributes:
        codes: (N, D) the samples' latent codes. fitted: (V, 3) the stage-1 mesh, metres.
        occluded: (V,) bool, the vertices the encoder did not see. colours: (V, 3) the
            samples' sRGB vertex colours in [0, 1]. mesh_vae: :func:`vae_fingerprint` of the
            Mesh-VAE that made the codes. anchored: whether codes decode relative to the fit
            (:class:`~d3dface.latent_spaces.VAESpace`).
    """

    codes: Tensor
    fitted: Tensor
    occluded: Tensor
    colours: Tensor
    mesh_vae: str
    anchored: bool


def save_latents(result: FaceResult, path: Path) -> Path:
    """Write ``result``'s codes, fit, occluded vertices and colours to ``path``."""
    tensors = {
        "codes": result.codes.float(),
        "fitted": result.target.fitted.float(),
        "occluded": result.target.occluded,
        "colours": result.fit.colours.float(),
    }
    metadata = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "mesh_vae": vae_fingerprint(result.space.vae),
        "anchored": str(result.space.offset is not None).lower(),
    }
    return save_tensors(tensors, path, metadata)


def load_latents(folder: Path) -> SavedLatents:
    """Read the ``latents.safetensors`` of a result folder.

    Raises:
        FileNotFoundError: the folder or the file is missing.
        ValueError: the file is damaged, of another kind or version, or inconsistent.
    """
    path = folder / LATENTS_NAME
    if not folder.is_dir():
        raise FileNotFoundError(f"'{folder}' is not a folder; give the --out folder of a run")
    if not path.is_file():
        raise FileNotFoundError(
            f"'{folder}' holds no {LATENTS_NAME}: give the folder a reconstruct run wrote "
            "(for a folder of photos, the photo's own subfolder), or run reconstruct again"
        )
    try:
        with safe_open(path, "pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(path)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"'{path}' is damaged ({err}); run reconstruct again") from err
    if metadata.get("kind") != KIND or metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"'{path}' is not a d3dface latents file of version {FORMAT_VERSION}; run "
            "reconstruct again"
        )
    if any(name not in tensors for name in _TENSORS) or not _shapes_agree(tensors):
        raise ValueError(f"'{path}' is incomplete or malformed; run reconstruct again")
    return SavedLatents(
        codes=tensors["codes"],
        fitted=tensors["fitted"],
        occluded=tensors["occluded"].bool(),
        colours=tensors["colours"],
        mesh_vae=metadata.get("mesh_vae", ""),
        anchored=metadata.get("anchored") == "true",
    )


def _shapes_agree(tensors: dict[str, Tensor]) -> bool:
    """Codes (N, D), a mesh (V, 3), occluded vertices (V,) and colours (V, 3)."""
    vertices = tensors["fitted"].shape[0]
    return (
        tensors["codes"].ndim == 2
        and tuple(tensors["fitted"].shape) == (vertices, 3)
        and tuple(tensors["occluded"].shape) == (vertices,)
        and tuple(tensors["colours"].shape) == (vertices, 3)
    )


def blend_shares(text: str) -> list[float]:
    """``"0,0.5,1"`` -> the shares of the second sample, each in [0, 1] and at least 0.01
    from the others (each names a file by its percent).

    Raises:
        ValueError: not numbers, out of range, too close, or none.
    """
    try:
        shares = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"blends must be numbers between 0 and 1 like 0,0.5,1; got '{text}'"
        ) from None
    if not shares:
        raise ValueError("no blend given; give shares between 0 and 1 like 0,0.5,1")
    outside = [share for share in shares if not 0.0 <= share <= 1.0]
    if outside:
        raise ValueError(f"blends must be between 0 and 1; got {outside[0]}")
    percents = [round(100 * share) for share in shares]
    if len(set(percents)) < len(percents):
        raise ValueError(f"blends must be at least 0.01 apart; got '{text}'")
    return shares


def check_pair(saved: SavedLatents, folder: Path, first: int, second: int) -> None:
    """Refuse two sample numbers that cannot be blended: one the folder does not hold, or the
    same sample twice (its blends are all that sample).

    Raises:
        ValueError: the message says which and what to give.
    """
    count = saved.codes.shape[0]
    for index in (first, second):
        if not 0 <= index < count:
            raise ValueError(
                f"sample {index} does not exist in '{folder}': it holds samples 0 to {count - 1}"
            )
    if first == second:
        raise ValueError(
            f"samples {first} and {second} are the same sample, and every blend of it is "
            "itself; give two different samples"
        )


def write_blends(
    pipeline: Diverse3DFace,
    folder: Path,
    first: int,
    second: int,
    shares: Sequence[float],
    suffixes: Sequence[str],
    out_dir: Path | None = None,
) -> list[Path]:
    """Decode meshes between samples ``first`` and ``second`` of a result folder.

    Args:
        pipeline: the pipeline whose Mesh-VAE made the result.
        folder: the result folder (holds ``latents.safetensors``).
        first, second: sample numbers (as in ``sample_XX``).
        shares: each blend's share of ``second`` in [0, 1] (0 gives ``first`` again), see
            :func:`blend_shares`.
        suffixes: mesh file suffixes (``".glb"``, ...), see
            :func:`d3dface.result_files.mesh_suffixes`.
        out_dir: where the meshes go (default ``folder``).

    Returns:
        The paths written: ``blend_<first>_<second>_<percent of second><suffix>``, coloured
        like the samples.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_latents` and :func:`check_pair`;
            codes made by another Mesh-VAE or for another mesh.
    """
    saved = load_latents(folder)
    check_pair(saved, folder, first, second)
    vae = pipeline.vae
    if saved.mesh_vae != vae_fingerprint(vae):
        raise ValueError(
            f"the codes in '{folder}' were made by another Mesh-VAE than this pipeline's; "
            "give the pipeline that made them (--model)"
        )
    if saved.fitted.shape[0] != pipeline.face_model.n_vertices:
        raise ValueError(f"the meshes in '{folder}' do not fit this pipeline's face model")
    device = next(vae.parameters()).device
    space = VAESpace(
        vae, saved.fitted.to(device), saved.occluded.to(device), anchored=saved.anchored
    )
    codes = saved.codes.to(device)
    out_dir = folder if out_dir is None else out_dir
    faces = pipeline.face_model.faces.cpu().numpy()
    colours = saved.colours.double().numpy()
    paths = []
    for share in shares:
        vertices = interpolate(space, codes[first], codes[second], share).cpu().numpy()
        stem = blend_stem(first, second, share)
        for suffix in suffixes:
            paths.append(export_mesh(out_dir / f"{stem}{suffix}", vertices, faces, colours))
    return paths


def blend_stem(first: int, second: int, share: float) -> str:
    """The file stem of a blend of samples ``first`` and ``second`` with ``share`` (0-1) of
    ``second``: ``blend_<first>_<second>_<percent of second>`` (``blend_00_03_050``)."""
    return f"blend_{first:02d}_{second:02d}_{round(100 * share):03d}"
