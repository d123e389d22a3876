"""A result folder's latent codes (``latents.safetensors``) and ``python -m d3dface
interpolate``: blends decoded long after the run, as the app's blend slider does."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from safetensors.torch import load_file

from d3dface import Diverse3DFace
from d3dface.cli import main
from d3dface.hub import save_tensors
from d3dface.latents_file import LATENTS_NAME, blend_shares, load_latents

TEST_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "test_images" / "obama.jpg"


@pytest.fixture(scope="module")
def result_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    """A saved 3-sample result of obama.jpg (short run) and its samples (3, V, 3)."""
    if not TEST_PHOTO.is_file():
        pytest.skip(f"shared test photo not found at {TEST_PHOTO}")
    pipeline = Diverse3DFace.from_pretrained()
    result = pipeline(TEST_PHOTO, n=3, seed=2, iterations=8, fit_iterations=30)
    folder = tmp_path_factory.mktemp("result")
    result.save(folder, formats="ply")
    interpolated = result.interpolate(0, 2, 0.75)  # t is the second sample's share
    return folder, torch.cat([result.samples, interpolated[None]])


def _ply(path: Path) -> np.ndarray:
    return np.asarray(trimesh.load(path, process=False).vertices)


def test_blends_at_the_ends_are_the_samples_and_between_match_the_api(
    result_folder: tuple[Path, torch.Tensor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, meshes = result_folder
    assert LATENTS_NAME in json.loads((folder / "metrics.json").read_text())["files"]
    args = ["interpolate", str(folder), "0", "2", "--t", "0,0.75,1", "--formats", "ply,glb"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    assert "3 blends of samples 0 and 2" in capsys.readouterr().out
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [f"blend_00_02_{p}.{s}" for p in ("000", "075", "100") for s in ("glb", "ply")]
    assert np.allclose(_ply(tmp_path / "blend_00_02_000.ply"), _ply(folder / "sample_00.ply"))
    assert np.allclose(_ply(tmp_path / "blend_00_02_100.ply"), _ply(folder / "sample_02.ply"))
    colours = trimesh.load(tmp_path / "blend_00_02_075.ply", process=False).visual.vertex_colors
    assert np.array_equal(colours, trimesh.load(folder / "sample_00.ply").visual.vertex_colors)
    # the CLI's t = 0.75 is the API's
    between = _ply(tmp_path / "blend_00_02_075.ply")
    assert np.allclose(between, meshes[3].numpy(), atol=1e-6)
    assert not np.allclose(between, _ply(folder / "sample_00.ply"), atol=1e-4)
    glb = trimesh.load(tmp_path / "blend_00_02_075.glb", force="mesh")
    assert np.allclose(glb.vertices, between, atol=1e-6)  # same mesh, same vertex order


def test_a_new_result_in_the_folder_removes_the_old_blends(
    result_folder: tuple[Path, torch.Tensor], tmp_path: Path
) -> None:
    folder, _ = result_folder
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in folder.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert main(["interpolate", str(copy), "1", "2", "--t", "0.5"]) == 0
    assert (copy / "blend_01_02_050.glb").is_file()  # beside the result by default
    pipeline = Diverse3DFace.from_pretrained()
    pipeline(TEST_PHOTO, n=2, seed=3, iterations=2, fit_iterations=5).save(copy, formats="ply")
    assert not list(copy.glob("blend_*"))
    assert load_latents(copy).codes.shape[0] == 2


@pytest.mark.parametrize(
    ("sample_args", "message"),
    [
        (["0", "3"], "sample 3 does not exist"),
        (["1", "1"], "the same sample"),  # wrote five copies of sample 1
        (["0", "1", "--t", "0.5,1.5"], "between 0 and 1; got 1.5"),
        (["0", "1", "--t", "half"], "must be numbers"),
        (["0", "1", "--t", "0.501,0.504"], "at least 0.01 apart"),
        (["0", "1", "--formats", "stl"], "unknown mesh format"),
    ],
)
def test_bad_requests_are_one_line_errors(
    result_folder: tuple[Path, torch.Tensor],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sample_args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_models(*args: object, **kwargs: object) -> None:
        raise AssertionError("the models were loaded before the request was checked")

    monkeypatch.setattr(Diverse3DFace, "from_pretrained", no_models)
    folder, _ = result_folder
    assert main(["interpolate", str(folder), *sample_args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_missing_damaged_or_foreign_latents_are_named(
    result_folder: tuple[Path, torch.Tensor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = result_folder
    assert main(["interpolate", str(tmp_path), "0", "1"]) == 2
    assert f"holds no {LATENTS_NAME}" in capsys.readouterr().err
    (tmp_path / LATENTS_NAME).write_bytes(b"not a safetensors file")
    assert main(["interpolate", str(tmp_path), "0", "1"]) == 2
    assert "is damaged" in capsys.readouterr().err
    # codes made by another Mesh-VAE (its fingerprint differs) are not decoded by this one
    tensors = load_file(folder / LATENTS_NAME)
    stored = load_latents(folder)
    metadata = {"kind": "d3dface.latents", "format_version": "1", "anchored": "true"}
    save_tensors(tensors, tmp_path / LATENTS_NAME, {**metadata, "mesh_vae": "0" * 64})
    assert stored.mesh_vae != "0" * 64
    assert main(["interpolate", str(tmp_path), "0", "1"]) == 2
    assert "made by another Mesh-VAE" in capsys.readouterr().err
    # colours for fewer vertices than the mesh has
    cut = {**tensors, "colours": tensors["colours"][:-1]}
    save_tensors(cut, tmp_path / LATENTS_NAME, {**metadata, "mesh_vae": stored.mesh_vae})
    assert main(["interpolate", str(tmp_path), "0", "1"]) == 2
    assert "incomplete or malformed" in capsys.readouterr().err


def test_blend_shares_parse_and_safetensors_files_get_ordinary_permissions(
    tmp_path: Path,
) -> None:
    assert blend_shares("0, 0.5,1") == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="no blend given"):
        blend_shares(" , ")
    with pytest.raises(ValueError, match="between 0 and 1; got nan"):
        blend_shares("nan")
    # as a JSON file beside it, not safetensors 0.8's owner-only 0600
    path = save_tensors({"a": torch.zeros(2)}, tmp_path / "a.safetensors")
    (tmp_path / "a.json").write_text("{}")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
