"""Hub packaging: load from a directory, from a Hub-style cache offline, upload, bad files,
and the README / model-card snippet run as written."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub.utils import filter_repo_objects
from PIL import Image
from shared_photos import shared_photo

from d3dface import Diverse3DFace, hub
from d3dface.bench.occluders import draw_plain_face_mask
from d3dface.cli import main
from d3dface.facemodel.model import FaceModel
from d3dface.hub import (
    CHECKPOINTS_DIR,
    WeightsError,
    from_pretrained,
    network_errors,
    push_to_hub,
    sha256_of,
)
from d3dface.imageio import load_image
from d3dface.perception.landmarks import detect_face
from d3dface.vae.model import MeshVAE

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "d3dface/diverse3dface"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache holding the shipped checkpoints as repo ``REPO_ID`` at ``main``,
    laid out as ``huggingface_hub`` leaves a download (refs/main -> snapshots/<commit>/)."""
    cache = tmp_path_factory.mktemp("hf_cache")
    repo = cache / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(CHECKPOINTS_DIR, snapshot)
    shutil.copy2(ROOT / "model_card.md", snapshot / "README.md")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


@pytest.fixture()
def offline_cache(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``hub_cache`` the default cache, offline."""
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return hub_cache


def test_every_model_loads_from_a_local_directory() -> None:
    assert isinstance(from_pretrained(CHECKPOINTS_DIR), Diverse3DFace)
    assert isinstance(from_pretrained(CHECKPOINTS_DIR / "face_model"), FaceModel)
    assert isinstance(from_pretrained(CHECKPOINTS_DIR, subfolder="mesh_vae_lite"), MeshVAE)


def test_hf_hub_download_and_from_pretrained_work_from_the_offline_cache(
    offline_cache: Path,
) -> None:
    config = huggingface_hub.hf_hub_download(REPO_ID, "mesh_vae_lite/config.json")
    assert Path(config).is_file() and str(offline_cache) in config
    vae = MeshVAE.from_pretrained(Path(config).parent)
    assert vae.latent_shape == (10, 64)
    assert isinstance(MeshVAE.from_pretrained(REPO_ID, subfolder="mesh_vae_lite"), MeshVAE)
    pipe = Diverse3DFace.from_pretrained(REPO_ID, revision="main")
    assert pipe.face_model.n_vertices == pipe.vae.n_vertices == 5042
    assert FaceModel.from_pretrained(REPO_ID).n_vertices == 5042  # the pipeline's face model


def test_missing_shipped_weights_say_where_they_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an installed copy of the package (not the project's clone) has no checkpoints/ beside it
    absent = tmp_path / "site-packages" / "checkpoints"
    monkeypatch.setattr(hub, "CHECKPOINTS_DIR", absent)
    with pytest.raises(WeightsError, match="checkpoints/ folder of the d3dface project"):
        Diverse3DFace.from_pretrained(absent)


def test_a_repo_missing_from_the_offline_cache_is_a_clear_error(offline_cache: Path) -> None:
    with pytest.raises(WeightsError, match="not in the local Hub cache"):
        Diverse3DFace.from_pretrained("nobody/nothing")


def test_a_revision_missing_from_the_offline_cache_is_named(offline_cache: Path) -> None:
    with pytest.raises(WeightsError) as caught:
        Diverse3DFace.from_pretrained(REPO_ID, revision="v2")
    message = str(caught.value)
    assert f"revision 'v2' of '{REPO_ID}' is not in the local Hub cache" in message
    assert "'main'" in message and COMMIT in message  # the revisions that are cached
    assert "HF_HUB_OFFLINE=1" in message and "\n" not in message


def _client_error(name: str) -> Exception:
    """An exception of the HTTP client the installed huggingface_hub uses (httpx2 for 2.x)."""
    client = pytest.importorskip("httpx2")
    error = getattr(client, name)("[Errno -2] Name or service not known")
    assert isinstance(error, network_errors())
    return error


@pytest.mark.parametrize(
    ("where", "error_name"),
    [
        # huggingface_hub falls back to the (here empty) cache on these two ...
        ("repo_info", "ConnectError"),
        ("repo_info", "ReadTimeout"),
        # ... and lets these through
        ("repo_info", "RemoteProtocolError"),
        ("snapshot_download", "ReadTimeout"),
    ],
)
def test_no_network_is_a_one_line_error_that_says_how_to_load_offline(
    where: str,
    error_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = _client_error(error_name)

    def unreachable(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # the network call is patched
    target = huggingface_hub.HfApi if where == "repo_info" else huggingface_hub
    monkeypatch.setattr(target, where, unreachable)
    with pytest.raises(WeightsError) as caught:
        Diverse3DFace.from_pretrained(REPO_ID)
    message = str(caught.value)
    assert "\n" not in message and f"{error_name}: [Errno -2]" in message
    assert "could not be reached" in message and "check the network" in message
    if where == "snapshot_download" or error_name == "RemoteProtocolError":
        assert "HF_HUB_OFFLINE=1 with the model already in the Hub cache" in message
    assert main(["info", "--model", REPO_ID]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "could not be reached" in err


@pytest.mark.parametrize(
    ("step", "error_name"), [("create_repo", "ConnectError"), ("upload_folder", "WriteTimeout")]
)
def test_push_to_hub_without_network_is_a_one_line_error(
    step: str, error_name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = _client_error(error_name)
    calls: list[str] = []

    def fails(self: object, *args: object, **kwargs: object) -> None:
        calls.append(step)
        raise error

    def creates(self: object, *args: object, **kwargs: object) -> None:
        calls.append("create_repo")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", creates)
    monkeypatch.setattr(huggingface_hub.HfApi, step, fails)
    assert main(["push-to-hub", "--repo-id", "x/y", "--token", "hf_fake"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: upload to 'x/y' failed: the Hugging Face Hub could not be reached"
    )
    assert f"{error_name}: [Errno -2]" in err and err.count("\n") == 1
    assert calls[-1] == step


@pytest.mark.parametrize("command", ["push-to-hub", "push-space"])
def test_an_upload_in_offline_mode_says_to_unset_it(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # it said the Hub "could not be reached; check the network" (conftest sets offline mode,
    # so huggingface_hub refuses before any request)
    assert main([command, "--repo-id", "x/y", "--token", "hf_fake"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: upload to 'x/y' needs the Hub, but HF_HUB_OFFLINE=1")
    assert "unset HF_HUB_OFFLINE to upload" in err and err.count("\n") == 1


@pytest.fixture()
def linked_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline Hub cache as huggingface_hub writes it: the snapshot's files are symlinks
    to ``blobs/<sha256>``. Returns the snapshot folder."""
    repo = tmp_path / "hf_cache" / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    for source in CHECKPOINTS_DIR.rglob("*"):
        if source.is_file():
            blob = repo / "blobs" / sha256_of(source)
            shutil.copy2(source, blob)
            link = snapshot / source.relative_to(CHECKPOINTS_DIR)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))  # as huggingface_hub does
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return snapshot


def test_a_corrupt_cached_file_is_named_with_how_to_download_it_again(linked_cache: Path) -> None:
    weights = linked_cache / "mesh_vae_lite" / "model.safetensors"
    blob = weights.resolve()
    assert blob.parent.name == "blobs" and Diverse3DFace.from_pretrained(REPO_ID)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as caught:
        Diverse3DFace.from_pretrained(REPO_ID)
    message = str(caught.value)
    assert "corrupt or was changed" in message and "\n" not in message
    assert f"cached download of Hub repo '{REPO_ID}'" in message
    assert "force_download=True" in message and "--force-download" in message
    assert f"delete '{weights}'" in message and str(blob) in message
    # force_download needs the Hub: offline it is refused rather than silently ignored
    with pytest.raises(
        WeightsError,
        match=r"force_download \(--force-download\) needs the Hub, but HF_HUB_OFFLINE=1",
    ):
        Diverse3DFace.from_pretrained(REPO_ID, force_download=True)


def _hub_answers(self: object, repo_id: str, **kwargs: object) -> SimpleNamespace:
    """A stand-in for ``HfApi.repo_info`` when the Hub answers."""
    return SimpleNamespace(id=repo_id, sha=COMMIT)


@pytest.mark.parametrize("where", ["repo_info", "hf_hub_download"])
def test_force_download_without_network_is_refused_instead_of_using_the_cache(
    where: str,
    hub_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """snapshot_download falls back to the cached snapshot when the Hub cannot be reached: a
    forced download must say that nothing was downloaded again rather than load the cache."""
    error = _client_error("ConnectError")

    def unreachable(*args: object, **kwargs: object) -> None:
        raise error

    def force_download_fails(**kwargs: object) -> None:
        # what hf_hub_download raises when the Hub stops answering during a forced download
        raise ValueError("Force download failed due to the above error.") from error

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # the network calls are patched
    if where == "repo_info":
        monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", unreachable)
        # without force_download the cached snapshot is still what loads
        assert isinstance(Diverse3DFace.from_pretrained(REPO_ID), Diverse3DFace)
    else:
        monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", _hub_answers)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", force_download_fails)
    with pytest.raises(WeightsError) as caught:
        Diverse3DFace.from_pretrained(REPO_ID, force_download=True)
    message = str(caught.value)
    assert message == (
        "the Hugging Face Hub could not be reached (ConnectError: [Errno -2] Name or service "
        f"not known), so the files of '{REPO_ID}' were not downloaded again (force_download); "
        "check the network and try again"
    )
    assert main(["info", "--model", REPO_ID, "--force-download"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"


def test_force_download_reaches_huggingface_hub(
    hub_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, object]] = []
    snapshot = hub_cache / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT
    served = {"folder": snapshot}

    def snapshot_download(**kwargs: object) -> str:
        calls.append(kwargs)
        return str(served["folder"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", _hub_answers)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # the Hub calls are patched
    assert isinstance(Diverse3DFace.from_pretrained(REPO_ID, force_download=True), Diverse3DFace)
    assert isinstance(from_pretrained(REPO_ID, force_download=True), Diverse3DFace)
    vae = MeshVAE.from_pretrained(REPO_ID, subfolder="mesh_vae_lite", force_download=True)
    assert isinstance(vae, MeshVAE)
    assert isinstance(FaceModel.from_pretrained(REPO_ID, subfolder="face_model"), FaceModel)
    # each loader fetches a config.json first, then the files it needs, config.json left out:
    # the pipeline and the generic loader its two models' folders, the Mesh-VAE and the face
    # model their own files (2 calls each)
    assert [call["force_download"] for call in calls] == [True] * 6 + [False] * 2
    fetches = [(call["allow_patterns"], call["ignore_patterns"]) for call in calls]
    assert fetches[:2] == [
        (["config.json"], None),
        (["face_model/*", "mesh_vae_lite/*"], ["config.json"]),
    ]
    assert fetches[2:4] == fetches[:2]
    assert fetches[5] == (["mesh_vae_lite/*"], ["mesh_vae_lite/config.json"])
    calls.clear()
    served["folder"] = snapshot / "face_model"  # the CLI's --model: a repo of a face model
    assert main(["info", "--model", "me/face-model", "--force-download"]) == 0
    assert calls[0]["force_download"] is True and calls[0]["repo_id"] == "me/face-model"
    assert "ict_face_model_d3dface" in capsys.readouterr().out


def _same_face_model(model: FaceModel) -> bool:
    """Whether ``model`` is the shipped face model (``checkpoints/face_model``)."""
    shipped = FaceModel.from_pretrained(CHECKPOINTS_DIR / "face_model")
    return model.name == shipped.name and all(
        bool((tensor == shipped.state_dict()[name]).all())
        for name, tensor in model.state_dict().items()
    )


def test_a_face_model_loads_from_a_pipeline_folder_as_its_config_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _same_face_model(FaceModel.from_pretrained(CHECKPOINTS_DIR))
    vae = MeshVAE.from_pretrained(CHECKPOINTS_DIR)  # the Mesh-VAE the pipeline config names
    own = MeshVAE.from_pretrained(CHECKPOINTS_DIR / "mesh_vae_lite").state_dict()
    assert all(torch.equal(tensor, own[name]) for name, tensor in vae.state_dict().items())
    pipeline = tmp_path / "ckpt"
    shutil.copytree(CHECKPOINTS_DIR, pipeline)
    (pipeline / "face_model").rename(pipeline / "faces_v2")
    config_path = pipeline / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "face_model": "faces_v2"}))
    assert _same_face_model(FaceModel.from_pretrained(pipeline))
    assert isinstance(Diverse3DFace.from_pretrained(pipeline), Diverse3DFace)
    # the commands that take a face model: info describes the face model's own folder
    assert main(["info", "--model", str(pipeline)]) == 0
    out = capsys.readouterr().out
    assert f"({pipeline / 'faces_v2'})" in out and "build_report.json" in out
    assert "USC Institute for Creative Technologies" in out and "not recorded" not in out
    # a pipeline config naming a missing folder, or none, is a one-line error naming the key
    config_path.write_text(json.dumps({**config, "face_model": "nowhere"}))
    with pytest.raises(WeightsError) as caught:
        FaceModel.from_pretrained(pipeline)
    assert str(caught.value) == (
        f"'{pipeline}' has no face_model folder 'nowhere' (named by key 'face_model'); its "
        "folders are: faces_v2, mesh_vae_lite"
    )
    del config["face_model"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="key 'face_model' must be the name of the face model"):
        FaceModel.from_pretrained(pipeline)
    assert main(["info", "--model", str(pipeline)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@dataclass
class ServedHub:
    """What the stand-in ``snapshot_download`` of :func:`served_hub` was asked for: the
    ``allow_patterns`` of each call, and how many times each file of the repo was fetched."""

    asked: list[list[str]] = field(default_factory=list)
    fetched: Counter[str] = field(default_factory=Counter)
    revisions: list[str | None] = field(default_factory=list)


@pytest.fixture()
def served_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServedHub:
    """``snapshot_download`` serving the shipped checkpoints, plus a second Mesh-VAE folder
    ``mesh_vae_other``, as repo ``REPO_ID``: into an empty snapshot folder of a Hub cache
    (``tmp_path / "snapshot"`` links to it) it copies only the files its ``allow_patterns``
    select and its ``ignore_patterns`` do not, as the Hub would."""
    snapshot = tmp_path / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (tmp_path / "snapshot").symlink_to(snapshot)
    served = ServedHub()
    repo_files = {
        path.relative_to(CHECKPOINTS_DIR).as_posix(): path
        for path in CHECKPOINTS_DIR.rglob("*")
        if path.is_file()
    }
    for path in (CHECKPOINTS_DIR / "mesh_vae_lite").iterdir():
        repo_files[f"mesh_vae_other/{path.name}"] = path

    def snapshot_download(
        allow_patterns: list[str],
        ignore_patterns: list[str] | None = None,
        revision: str | None = None,
        **kwargs: object,
    ) -> str:
        served.asked.append(allow_patterns)
        served.revisions.append(revision)
        for name in filter_repo_objects(
            list(repo_files), allow_patterns=allow_patterns, ignore_patterns=ignore_patterns
        ):
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_files[name], snapshot / name)
            served.fetched[name] += 1
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # snapshot_download is patched
    return served


def test_a_face_model_loads_from_a_pipeline_hub_repo_fetching_only_its_own_files(
    served_hub: ServedHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _same_face_model(FaceModel.from_pretrained(REPO_ID))
    assert served_hub.asked == [["config.json"], ["face_model/*"]]
    assert sorted(path.name for path in (tmp_path / "snapshot").iterdir()) == [
        "config.json",
        "face_model",
    ]  # not the Mesh-VAE
    served_hub.asked.clear()
    assert main(["info", "--model", REPO_ID]) == 0
    assert served_hub.asked == [["config.json"], ["face_model/*"]]  # info fetches once
    assert "vertices        5042" in capsys.readouterr().out
    with pytest.raises(WeightsError, match=f"Hub repo '{REPO_ID}' has no folder 'nothing'"):
        FaceModel.from_pretrained(REPO_ID, subfolder="nothing")


def test_the_pipeline_fetches_only_its_config_and_its_two_models_of_a_hub_repo(
    served_hub: ServedHub, tmp_path: Path
) -> None:
    pipe = Diverse3DFace.from_pretrained(REPO_ID)
    assert served_hub.asked == [["config.json"], ["face_model/*", "mesh_vae_lite/*"]]
    assert pipe.folders == {"face_model": "face_model", "mesh_vae": "mesh_vae_lite"}
    assert sorted(path.name for path in (tmp_path / "snapshot").iterdir()) == [
        "config.json",
        "face_model",
        "mesh_vae_lite",
    ]  # not the repo's other Mesh-VAE
    served_hub.asked.clear()
    assert Diverse3DFace.from_pretrained(REPO_ID, vae="mesh_vae_other").folders["mesh_vae"] == (
        "mesh_vae_other"
    )
    assert served_hub.asked == [["config.json"], ["face_model/*", "mesh_vae_other/*"]]
    missing = f"Hub repo '{REPO_ID}' has no mesh_vae folder 'mesh_vae_paper' \\(named by the vae"
    with pytest.raises(WeightsError, match=missing):
        Diverse3DFace.from_pretrained(REPO_ID, vae="mesh_vae_paper")


def test_a_load_from_a_hub_repo_reads_one_commit(served_hub: ServedHub) -> None:
    # the config of the branch's commit, then the models of that commit: a push between the
    # two fetches paired the config with the new commit's weights
    Diverse3DFace.from_pretrained(REPO_ID)
    assert served_hub.revisions == [None, COMMIT]
    served_hub.revisions.clear()
    FaceModel.from_pretrained(REPO_ID, revision="main")
    assert served_hub.revisions == ["main", COMMIT]


@pytest.mark.parametrize(
    ("load", "subfolder", "loaded"),
    [
        (from_pretrained, None, Diverse3DFace),
        (from_pretrained, "face_model", FaceModel),
        (from_pretrained, "mesh_vae_lite", MeshVAE),
        (FaceModel.from_pretrained, "face_model", FaceModel),
        (MeshVAE.from_pretrained, "mesh_vae_lite", MeshVAE),
        (Diverse3DFace.from_pretrained, None, Diverse3DFace),
    ],
    ids=["generic-pipeline", "generic-face-model", "generic-vae", "face-model", "vae", "pipe"],
)
def test_a_load_from_a_hub_repo_fetches_each_file_once(
    served_hub: ServedHub, load: Callable[..., object], subfolder: str | None, loaded: type
) -> None:
    # the generic loader fetched the config.json for the kind, and its model's loader again;
    # a face model's or a Mesh-VAE's own loader fetched it, then all of its files again
    assert isinstance(load(REPO_ID, subfolder=subfolder), loaded)
    config = f"{subfolder}/config.json" if subfolder else "config.json"
    assert served_hub.fetched[config] == 1
    assert set(served_hub.fetched.values()) == {1}


def test_save_pretrained_keeps_the_published_layout_licence_and_config_entries(
    tmp_path: Path,
) -> None:
    pipe = Diverse3DFace.from_pretrained()
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ValueError, match=r"directory '.*taken' is a file; give a folder"):
        pipe.save_pretrained(tmp_path / "taken")  # was NotADirectoryError from inside
    with pytest.raises(ValueError, match=r"lies inside '.*taken', which is a file"):
        pipe.face_model.save_pretrained(tmp_path / "taken" / "face_model")
    pipe.save_pretrained(tmp_path / "copy")
    copy = tmp_path / "copy"
    folders = sorted(path.name for path in copy.iterdir() if path.is_dir())
    assert folders == sorted(path.name for path in CHECKPOINTS_DIR.iterdir() if path.is_dir())
    assert folders == ["face_model", "mesh_vae_lite"]  # the model card's subfolder names
    for folder in ("", "face_model", "mesh_vae_lite"):
        shipped = json.loads((CHECKPOINTS_DIR / folder / "config.json").read_text())
        saved = json.loads((copy / folder / "config.json").read_text())
        assert {**saved, "weights": None} == {**shipped, "weights": None}, folder or "pipeline"
    face_config = json.loads((copy / "face_model" / "config.json").read_text())
    assert "MIT" in face_config["licence"]  # the ICT Face Model's notice must be kept
    assert "USC Institute for Creative Technologies" in face_config["licence"]
    assert {"units", "build_settings", "n_eyeball_vertices"} <= set(face_config)
    vae_config = json.loads((copy / "mesh_vae_lite" / "config.json").read_text())
    assert vae_config["training"]["epoch"] == 85
    again = Diverse3DFace.from_pretrained(copy)
    for name, tensor in pipe.vae.state_dict().items():
        assert bool((again.vae.state_dict()[name] == tensor).all()), name
    assert isinstance(MeshVAE.from_pretrained(copy, subfolder="mesh_vae_lite"), MeshVAE)
    # saved again under another Mesh-VAE folder: still complete, and the notice still there
    again.save_pretrained(tmp_path / "again", vae_folder="mesh_vae_mine")
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["mesh_vae"] == "mesh_vae_mine"
    assert Diverse3DFace.from_pretrained(tmp_path / "again").face_model.extra_config == {
        key: face_config[key]
        for key in ("licence", "units", "n_eyeball_vertices", "build_settings")
    }
    # a pipeline built from its models names the Mesh-VAE's folder by its config
    assert Diverse3DFace(pipe.face_model, pipe.vae).folders["mesh_vae"] == "mesh_vae_lite"


@pytest.fixture()
def vae_copy(tmp_path: Path) -> Path:
    target = tmp_path / "vae"
    shutil.copytree(CHECKPOINTS_DIR / "mesh_vae_lite", target)
    return target


def test_corrupt_weights_are_named(vae_copy: Path) -> None:
    weights = vae_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt or was changed"):
        MeshVAE.from_pretrained(vae_copy)


def test_truncated_weights_are_named(vae_copy: Path) -> None:
    weights = vae_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    config_path = vae_copy / "config.json"
    config = json.loads(config_path.read_text())
    config["weights"]["model.safetensors"]["sha256"] = sha256_of(weights)
    config_path.write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="cannot be read"):
        MeshVAE.from_pretrained(vae_copy)


def test_wrong_version_and_vertex_count_are_named(vae_copy: Path) -> None:
    config_path = vae_copy / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(WeightsError, match="format version 99"):
        MeshVAE.from_pretrained(vae_copy)
    config_path.write_text(json.dumps({**config, "n_vertices": 5023}))
    with pytest.raises(WeightsError, match="config says 5023 vertices"):
        MeshVAE.from_pretrained(vae_copy)
    config_path.write_text(json.dumps({**config, "kind": "d3dface.face_model"}))
    with pytest.raises(WeightsError, match=r"not a 'd3dface\.mesh_vae' model"):
        MeshVAE.from_pretrained(vae_copy)


DELETE = object()
"""A config edit that removes the key."""


@pytest.mark.parametrize(
    ("folder", "key", "value", "expected"),
    [
        (
            "mesh_vae_lite",
            ("architecture", "latent_channels"),
            "64x",
            "key 'architecture.latent_channels' must be a whole number of 1 or more, "
            'but it holds "64x"',
        ),
        (
            "mesh_vae_lite",
            ("architecture", "structure", "same_radius"),
            [2],
            "key 'architecture.structure.same_radius' must be a number above 0",
        ),
        (
            "mesh_vae_lite",
            ("n_vertices",),
            "5042",
            "key 'n_vertices' must be the vertex count, 5042 for its weights, "
            'but it holds "5042"',
        ),
        ("face_model", ("n_vertices",), DELETE, "key 'n_vertices' must be the vertex count"),
        (
            "face_model",
            ("weights", "model.safetensors"),
            "962e65a0216c1578",
            "key 'weights.model.safetensors' must be {\"sha256\": \"<the file's sha256",
        ),
        (
            "face_model",
            ("expression_names",),
            "browDown_L",
            "key 'expression_names' must be a list of strings",
        ),
        (
            "",
            ("face_model",),
            DELETE,
            "key 'face_model' must be the name of the face model's folder, "
            'e.g. "face_model", but it is missing',
        ),
        ("", ("format_version",), "1", "key 'format_version' must be the whole number 1"),
    ],
)
def test_a_hand_edited_config_names_the_key_and_what_it_should_be(
    folder: str, key: tuple[str, ...], value: object, expected: str, tmp_path: Path
) -> None:
    shutil.copytree(CHECKPOINTS_DIR, tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / folder / "config.json"
    config = json.loads(config_path.read_text())
    section = config
    for name in key[:-1]:
        section = section[name]
    if value is DELETE:
        del section[key[-1]]
    else:
        section[key[-1]] = value
    config_path.write_text(json.dumps(config))
    with pytest.raises(WeightsError) as caught:
        Diverse3DFace.from_pretrained(tmp_path / "ckpt")
    message = str(caught.value)
    assert message.startswith(f"'{config_path}': ") and expected in message
    assert "restore the model's original config.json" in message and "\n" not in message


def test_a_folder_of_another_library_is_not_taken_for_a_d3dface_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(WeightsError) as caught:
        from_pretrained(tmp_path)
    message = str(caught.value)
    assert "is not the config of a saved d3dface model: it has no key 'kind'" in message
    assert '"kind": "d3dface.face_model" or "d3dface.mesh_vae" or "d3dface.pipeline"' in message
    assert "None" not in message


def test_push_to_hub_uploads_weights_configs_and_the_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uploaded: dict[str, object] = {}

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            uploaded["token"] = token

        def create_repo(self, repo_id: str, **kwargs: object) -> None:
            uploaded["created"] = (repo_id, kwargs)

        def upload_folder(self, folder_path: Path, repo_id: str, **kwargs: object) -> object:
            folder = Path(folder_path)
            uploaded["files"] = sorted(
                str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
            )
            uploaded["card"] = (folder / "README.md").read_text()
            return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/abc")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert main(["push-to-hub", "--repo-id", "me/faces", "--token", "t0k", "--private"]) == 0
    assert "me/faces/commit/abc" in capsys.readouterr().out
    files = set(uploaded["files"])  # type: ignore[arg-type]
    assert {"README.md", "config.json", "face_model/model.safetensors"} <= files
    assert {"mesh_vae_lite/config.json", "mesh_vae_lite/model.safetensors"} <= files
    assert uploaded["token"] == "t0k" and uploaded["created"][1]["private"] is True  # type: ignore[index]
    assert str(uploaded["card"]).startswith("---\nlicense: mit")


def test_push_to_hub_refuses_a_corrupt_directory(tmp_path: Path) -> None:
    shutil.copytree(CHECKPOINTS_DIR, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "mesh_vae_lite" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="corrupt"):
        push_to_hub("me/faces", source=tmp_path / "ckpt")


def _snippet(path: Path) -> str:
    """The python block after the ``<!-- snippet: load-from-hub -->`` marker of a file."""
    text = path.read_text()
    found = re.search(r"<!-- snippet: load-from-hub -->\s*```python\n(.*?)```", text, re.S)
    assert found, f"{path.name} lacks the load-from-hub snippet"
    return found.group(1)


def test_the_readme_snippet_loads_from_a_hub_cache_and_reconstructs_a_photo(
    offline_cache: Path, tmp_path: Path
) -> None:
    code = _snippet(ROOT / "README.md")
    assert code == _snippet(ROOT / "model_card.md"), "README and model card snippets differ"
    assert len(code.strip().splitlines()) <= 5
    source = shared_photo("obama.jpg")
    photo = load_image(source)
    photo, _ = draw_plain_face_mask(photo, detect_face(photo).points, chin_margin_px=10)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    fast = "n=2, seed=0, iterations=5, fit_iterations=20"
    runnable = (
        code.replace('"photo.jpg"', repr(str(tmp_path / "photo.png")))
        .replace('"out/"', repr(str(tmp_path / "out")))
        .replace("n=8, seed=0", fast)
    )
    assert fast in runnable, "the snippet's call changed; update this test"
    namespace: dict[str, object] = {}
    exec(compile(runnable, "README snippet", "exec"), namespace)
    result = namespace["result"]
    assert result.samples.shape == (2, 5042, 3)  # type: ignore[attr-defined]
    assert (tmp_path / "out" / "sample_01.glb").is_file()
    assert np.asarray(Image.open(tmp_path / "out" / "mask.png")).any()


def test_shipped_weights_are_safetensors_and_json_only() -> None:
    files = [path for path in CHECKPOINTS_DIR.rglob("*") if path.is_file()]
    assert files and {path.suffix for path in files} <= {".safetensors", ".json"}
    total_mb = sum(path.stat().st_size for path in files) / 2**20
    assert total_mb < 60  # the checkpoints' size budget
