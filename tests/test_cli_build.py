"""``python -m d3dface build-model --quick`` and ``info`` run end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from d3dface.cli import main
from d3dface.facemodel.model import FaceModel

ROOT = Path(__file__).resolve().parents[1]
ICT = ROOT.parent / "shared" / "ict_facekit"


@pytest.mark.skipif(not ICT.is_dir(), reason="../shared/ict_facekit is not beside the project")
def test_quick_build_makes_a_loadable_model(tmp_path: Path) -> None:
    out = tmp_path / "face_model"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "d3dface",
            "build-model",
            "--ict",
            str(ICT),
            "--out",
            str(out),
            "--quick",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    model = FaceModel.from_pretrained(out)
    assert 4000 <= model.n_vertices <= 6000
    assert model.n_landmarks == 478 and model.n_regions >= 8
    report = json.loads((out / "build_report.json").read_text())
    assert report["reprojection"]["renders"] >= 1
    assert report["reprojection"]["median_px"] < 10


def test_build_refuses_an_out_that_is_a_file_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # it built the whole model (1-2 minutes) and then stopped with "[Errno 17] File exists"
    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was built before --out was checked")

    monkeypatch.setattr("d3dface.facemodel.build.build_face_model", no_build)
    existing = tmp_path / "face_model"
    existing.write_text("the user's file")
    args = ["build-model", "--ict", str(ICT), "--out", str(existing), "--quick", "--quiet"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "is a file; give a folder" in error and error.count("\n") == 1
    assert existing.read_text() == "the user's file"


def test_build_with_a_wrong_ict_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    status = main(["build-model", "--ict", str(tmp_path), "--out", str(tmp_path / "o")])
    assert status == 2
    assert "ict_face_model.npz' not found" in capsys.readouterr().err


def test_info_prints_the_shipped_model(capsys) -> None:
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    for expected in (
        "vertices",
        "identity modes  100",
        "expression      53",
        "regions",
        "landmarks       478",
        "model.safetensors",
        "MIT",
        "variance kept",
        "landmark error",
    ):
        assert expected in text
    # a file of 880 bytes was listed as "0.00 MB"
    assert "0.00 MB" not in text and re.search(r"build_report\.json +\d+B", text)


def test_info_on_a_missing_model_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["info", "--model", str(tmp_path / "none")]) == 2
    assert "neither a model directory" in capsys.readouterr().err


def test_train_vae_is_wired_into_the_cli(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train-vae", "--help"])
    assert exit_info.value.code == 0
    assert "--config {lite,paper}" in capsys.readouterr().out
