"""Publishing the app as a Space (d3dface.space_upload, ``push-space``), against a fake Hub."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import huggingface_hub
import pytest
from huggingface_hub.utils import filter_repo_objects

from d3dface.cli import main
from d3dface.hub import network_errors
from d3dface.space_upload import PROJECT_DIR, SPACE_PATTERNS, space_files


class FakeHub:
    """Stands in for ``huggingface_hub.HfApi``: records what ``create_repo`` and
    ``upload_folder`` were asked, and selects the files ``upload_folder`` would upload (its
    ``allow_patterns`` over the folder's files, without ``.git/``)."""

    calls: ClassVar[dict[str, object]] = {}

    def __init__(self, token: str | None = None) -> None:
        FakeHub.calls = {"token": token}

    def create_repo(self, repo_id: str, **kwargs: object) -> None:
        FakeHub.calls["created"] = (repo_id, kwargs)

    def upload_folder(self, folder_path: Path, repo_id: str, **kwargs: object) -> object:
        folder = Path(folder_path)
        present = [
            path.relative_to(folder).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and ".git" not in path.relative_to(folder).parts
        ]
        allowed = kwargs["allow_patterns"]
        FakeHub.calls["uploaded"] = sorted(filter_repo_objects(present, allow_patterns=allowed))
        FakeHub.calls["upload"] = (repo_id, kwargs)
        return SimpleNamespace(commit_url=f"https://huggingface.co/spaces/{repo_id}/commit/abc")


def test_push_space_publishes_the_app_its_package_weights_and_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    argv = ["push-space", "--repo-id", "me/faces-demo", "--token", "t0k", "--private"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "as the Space me/faces-demo: https://huggingface.co/spaces/me/faces-demo" in out
    created_repo, created = FakeHub.calls["created"]  # type: ignore[misc]
    assert created_repo == "me/faces-demo" and FakeHub.calls["token"] == "t0k"
    assert created["repo_type"] == "space" and created["space_sdk"] == "gradio"
    assert created["private"] is True
    _, upload = FakeHub.calls["upload"]  # type: ignore[misc]
    assert upload["repo_type"] == "space" and upload["delete_patterns"] == list(SPACE_PATTERNS)
    uploaded = set(FakeHub.calls["uploaded"])  # type: ignore[arg-type]
    assert uploaded == {path.as_posix() for path in space_files()}
    assert {
        "space_app.py",
        "README.md",
        "requirements.txt",
        "LICENSE",
        "d3dface/pipeline.py",
        "d3dface/vae/model.py",
        "checkpoints/config.json",
        "checkpoints/face_model/model.safetensors",
        "checkpoints/mesh_vae_lite/model.safetensors",
        "examples/obama_face_mask.jpg",
        "examples/obama_face_mask_mask.png",
    } <= uploaded
    assert not [name for name in uploaded if name.startswith(("tests/", "out/", ".ci/"))]
    assert not [name for name in uploaded if "__pycache__" in name or name.endswith(".pyc")]


def test_the_spaces_files_alone_start_the_app(tmp_path: Path) -> None:
    space = tmp_path / "space"
    for name in space_files():
        (space / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, space / name)
    check = (
        "import d3dface, space_app; from d3dface.pipeline import Diverse3DFace; "
        "space_app.build_demo(); Diverse3DFace.from_pretrained(); print(d3dface.__file__)"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=space,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip().splitlines()[-1]).is_relative_to(space)  # not this checkout


def test_push_space_needs_the_project_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    FakeHub.calls = {}
    assert main(["push-space", "--repo-id", "me/x", "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: '{tmp_path}' has no space_app.py") and err.count("\n") == 1
    (tmp_path / "space_app.py").write_text("")
    (tmp_path / "README.md").write_text("# my fork\n")
    assert main(["push-space", "--repo-id", "me/x", "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "lacks the Space's front matter (sdk: gradio, app_file: space_app.py)" in err
    assert FakeHub.calls == {}  # nothing was sent


@pytest.mark.parametrize("step", ["create_repo", "upload_folder"])
def test_push_space_without_network_is_a_one_line_error(
    step: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = pytest.importorskip("httpx2")
    error = client.ConnectError("[Errno -2] Name or service not known")
    assert isinstance(error, network_errors())

    def fails(self: object, *args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub.HfApi, step, fails)
    assert main(["push-space", "--repo-id", "x/y", "--token", "hf_fake"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: upload to 'x/y' failed: the Hugging Face Hub could not be")
    assert "ConnectError: [Errno -2]" in err and err.count("\n") == 1
