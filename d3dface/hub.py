"""Weights on disk and on the Hugging Face Hub: safetensors + ``config.json``.

Every saved model is a directory holding ``config.json`` and one or more ``.safetensors``
files. The config records ``format_version``, the model ``kind`` and the sha256 of each
weight file; all are checked on load so a corrupt, truncated or foreign file gives a clear
:class:`WeightsError` instead of a cryptic failure later.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from d3dface.out_folder import check_out_folder

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
# The weights shipped in the repository (made by the project's build and training scripts).
CHECKPOINTS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


class WeightsError(ValueError):
    """A saved model directory is missing, corrupt, or of the wrong kind or version."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MISSING: Any = object()
"""Marks a config key that is absent (``ConfigEntries`` defaults, problem reports)."""


def _is_whole(value: Any) -> bool:
    """A JSON whole number (``true`` / ``false`` are not numbers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A JSON number, whole or not (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    """A non-empty string."""
    return isinstance(value, str) and value != ""


class ConfigEntries:
    """Checked reading of a parsed ``config.json`` (or one of its sections).

    Every accessor returns the entry when it has the right type and range; otherwise it
    raises a WeightsError naming the file, the key (``architecture.latent_channels``), what
    the entry should be and what it holds, so a hand-edited config never surfaces later as
    a TypeError deep inside torch.
    """

    def __init__(self, values: dict[str, Any], path: Path, prefix: str = "") -> None:
        """``values``: the parsed entries; ``path``: the config.json they come from;
        ``prefix``: the dotted key of this section (``"architecture."``), for messages."""
        self.values = values
        self.path = path
        self.prefix = prefix

    def problem(self, key: str, should: str, value: Any = MISSING) -> WeightsError:
        """The error for ``key`` holding ``value`` (MISSING: absent) instead of ``should``."""
        if value is MISSING:
            got = "it is missing"
        else:
            shown = json.dumps(value, default=str)
            got = f"it holds {shown if len(shown) <= 60 else shown[:57] + '...'}"
        return WeightsError(
            f"'{self.path}': key '{self.prefix}{key}' must be {should}, but {got}; correct it "
            "or restore the model's original config.json"
        )

    def value(
        self, key: str, accept: Callable[[Any], bool], should: str, default: Any = MISSING
    ) -> Any:
        """``values[key]`` when ``accept`` takes it; ``default`` when absent (if given)."""
        value = self.values.get(key, MISSING)
        if value is MISSING and default is not MISSING:
            return default
        if value is MISSING or not accept(value):
            raise self.problem(key, should, value)
        return value

    def whole(self, key: str, minimum: int = 0, default: Any = MISSING, should: str = "") -> int:
        """A whole number >= ``minimum``; ``should`` overrides the description."""
        should = should or f"a whole number of {minimum} or more"
        return self.value(key, lambda v: _is_whole(v) and v >= minimum, should, default)

    def positive(self, key: str, default: Any = MISSING) -> float:
        """A number above 0."""
        return float(
            self.value(key, lambda v: _is_number(v) and v > 0, "a number above 0", default)
        )

    def text(self, key: str, default: Any = MISSING, should: str = "") -> str:
        """A non-empty string; ``should`` overrides the description."""
        return self.value(key, _is_text, should or "a string", default)

    def texts(self, key: str, default: Any = MISSING) -> list[str]:
        """A list of strings."""
        return list(
            self.value(
                key,
                lambda v: isinstance(v, list) and all(isinstance(item, str) for item in v),
                "a list of strings",
                default,
            )
        )

    def wholes(self, key: str, minimum: int = 1, default: Any = MISSING) -> list[int]:
        """A non-empty list of whole numbers >= ``minimum``."""
        return list(
            self.value(
                key,
                lambda v: (
                    isinstance(v, list)
                    and len(v) > 0
                    and all(_is_whole(item) and item >= minimum for item in v)
                ),
                f"a list of whole numbers of {minimum} or more",
                default,
            )
        )

    def fractions(self, key: str, default: Any = MISSING) -> list[float]:
        """A non-empty list of numbers strictly between 0 and 1."""
        values = self.value(
            key,
            lambda v: (
                isinstance(v, list)
                and len(v) > 0
                and all(_is_number(item) and 0 < item < 1 for item in v)
            ),
            "a list of numbers between 0 and 1",
            default,
        )
        return [float(item) for item in values]

    def section(self, key: str) -> ConfigEntries:
        """The JSON object under ``key``, as ConfigEntries."""
        values = self.value(key, lambda v: isinstance(v, dict), "a JSON object ({...})")
        return ConfigEntries(values, self.path, f"{self.prefix}{key}.")

    def only(self, known: Iterable[str]) -> None:
        """Refuse keys outside ``known`` (a misspelt key would otherwise be ignored)."""
        known = list(known)
        unknown = sorted(set(self.values) - set(known))
        if unknown:
            where = f"'{self.prefix[:-1]}'" if self.prefix else "the top level"
            raise WeightsError(
                f"'{self.path}': {where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"the keys there are {', '.join(map(repr, known))}"
            )


def network_errors() -> tuple[type[Exception], ...]:
    """Base classes of the network errors that ``huggingface_hub`` lets through.

    ``huggingface_hub`` retries and falls back to its cache on some connection failures, but
    re-raises others (read timeouts, protocol errors, a connection lost during a download,
    any failure of an upload) as its HTTP client's own exceptions. Its ``HfHubHTTPError``
    derives from that client's base error (``httpx2.HTTPError`` for huggingface_hub 2.x,
    ``httpx.HTTPError`` for 1.x, ``requests.HTTPError`` / ``RequestException`` for 0.x), so
    that class is read from it rather than guessed; Python's ``ConnectionError`` and
    ``TimeoutError`` cover the socket-level failures (and ``OfflineModeIsEnabled``).
    """
    from huggingface_hub.errors import HfHubHTTPError

    builtin = {OSError, Exception, BaseException, object}
    client = [base for base in HfHubHTTPError.__mro__[1:] if base not in builtin]
    return (*client, ConnectionError, TimeoutError)


def one_line(error: BaseException) -> str:
    """``ExceptionName: message`` with the message's line breaks and runs of spaces folded."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


OFFLINE_HINT = (
    "load offline instead: HF_HUB_OFFLINE=1 with the model already in the Hub cache, or a "
    "local model folder"
)


def hub_cache_repo(path: Path) -> str | None:
    """The Hub repo id when ``path`` lies in a Hub cache snapshot
    (``.../models--owner--name/snapshots/<commit>/...``), else None."""
    parts = path.parts
    for index, part in enumerate(parts[:-1]):
        if part.startswith("models--") and parts[index + 1] == "snapshots":
            return part[len("models--") :].replace("--", "/")
    return None


def _cached_revisions(repo_folder: Path) -> list[str]:
    """Branch / tag names (``refs/``) and commits (``snapshots/``) a Hub cache folder holds."""
    refs_folder, snapshots_folder = repo_folder / "refs", repo_folder / "snapshots"
    refs = [path.relative_to(refs_folder).as_posix() for path in refs_folder.rglob("*")]
    commits = [path.name for path in snapshots_folder.glob("*") if path.is_dir()]
    return sorted(name for name in refs if (refs_folder / name).is_file()) + sorted(commits)


def _not_cached_message(
    repo_id: str, revision: str | None, cache_dir: str | Path | None, error: Exception
) -> str:
    """Why ``snapshot_download`` found nothing usable in the cache, in one line: which
    revision is missing (and which are cached), and whether the Hub was off or unreachable."""
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    cache = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser()
    cached = _cached_revisions(cache / f"models--{repo_id.replace('/', '--')}")
    cause = error.__cause__
    if constants.HF_HUB_OFFLINE or isinstance(cause, OfflineModeIsEnabled):
        why = "HF_HUB_OFFLINE=1, so the Hub was not asked; unset HF_HUB_OFFLINE to download it"
    else:
        reason = one_line(cause) if cause is not None else one_line(error)
        why = f"the Hub could not be reached ({reason}); check the network and try again"
    wanted = revision or "main"
    if not cached:
        return (
            f"'{repo_id}' is not in the local Hub cache ({cache}) and {why}, or give a local "
            "model folder"
        )
    if wanted not in cached:
        return (
            f"revision '{wanted}' of '{repo_id}' is not in the local Hub cache ({cache}); it "
            f"holds {', '.join(repr(name) for name in cached)}. Load one of those with "
            f"revision=..., or: {why}"
        )
    return (
        f"the cached copy of '{repo_id}' (revision '{wanted}', in {cache}) is incomplete "
        f"({one_line(error)}); {why}"
    )


def resolve_model_dir(
    path_or_repo: str | Path,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    force_download: bool = False,
    files: str | tuple[str, ...] = "*",
    skip: tuple[str, ...] = (),
) -> Path:
    """A local directory for ``path_or_repo``: itself if it exists, else a Hub snapshot.

    A Hub repo id (``owner/name``) is fetched with ``huggingface_hub.snapshot_download``,
    which honours ``HF_HUB_OFFLINE=1`` by using the local cache only; ``force_download``
    fetches every file again even when it is cached (to replace a corrupt cached file), and
    is refused unless the Hub answers. ``files``: the pattern (or patterns) of the files to
    fetch, relative to ``subfolder`` (default all; a local directory is used as it is);
    ``skip``: patterns of files among those not to fetch (fetched already). Every failure
    (not cached, unknown revision, no network, ...) is a one-line WeightsError.
    """
    local = Path(path_or_repo).expanduser()
    if local.is_dir():
        directory = local / subfolder if subfolder else local
        if not directory.is_dir():
            raise WeightsError(f"'{directory}' does not exist inside '{local}'")
        return directory
    text = str(path_or_repo)
    if local.is_relative_to(CHECKPOINTS_DIR):
        raise WeightsError(
            f"the shipped weights are not at '{local}': they are the checkpoints/ folder of "
            "the d3dface project, which an installed copy of the package does not hold; run "
            "from a clone of the project (or `pip install -e .` there), or give that folder or "
            "a Hub repo id (--model on the command line)"
        )
    if local.exists() or text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise WeightsError(
            f"'{text}' is neither a model directory nor a Hub repo id ('owner/name'); "
            "check the path, or give a repo id"
        )
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = (files,) if isinstance(files, str) else files
    if force_download and constants.HF_HUB_OFFLINE:
        raise WeightsError(
            "force_download (--force-download) needs the Hub, but HF_HUB_OFFLINE=1: unset "
            f"HF_HUB_OFFLINE to download '{text}' again"
        )
    try:
        if force_download:
            _ask_hub(text, revision, token)
        snapshot = snapshot_download(
            repo_id=text,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            allow_patterns=_in_subfolder(patterns, subfolder),
            ignore_patterns=_in_subfolder(skip, subfolder) or None,
            force_download=force_download,
        )
    except LocalEntryNotFoundError as err:
        raise WeightsError(_not_cached_message(text, revision, cache_dir, err)) from err
    except HFValidationError as err:
        raise WeightsError(f"'{text}' is not a valid Hub repo id: {one_line(err)}") from err
    except RevisionNotFoundError as err:
        raise WeightsError(
            f"Hub repo '{text}' has no revision '{revision}'; give an existing branch, tag or "
            "commit (or none for 'main')"
        ) from err
    except HfHubHTTPError as err:
        raise WeightsError(
            f"could not download '{text}' from the Hub: {one_line(err)} (check the repo id, "
            "your token for a private or gated repo, and the network)"
        ) from err
    except network_errors() as err:
        raise WeightsError(_unreachable_message(text, err, force_download)) from err
    except OSError as err:
        raise WeightsError(
            f"could not download '{text}' into the Hub cache: {one_line(err)} (check the free "
            "space and permissions of the cache folder, HF_HOME / HF_HUB_CACHE)"
        ) from err
    except ValueError as err:
        # hf_hub_download's "Force download failed due to the above error." when the Hub
        # stops answering after _ask_hub did; the cause is the network error
        if not (force_download and isinstance(err.__cause__, network_errors())):
            raise
        raise WeightsError(_unreachable_message(text, err.__cause__, force_download)) from err
    directory = Path(snapshot) / subfolder if subfolder else Path(snapshot)
    if subfolder and not directory.is_dir():
        holding = "" if patterns == ("*",) else f" holding {', '.join(patterns)}"
        raise WeightsError(f"Hub repo '{text}' has no folder '{subfolder}'{holding}")
    return directory


def _in_subfolder(patterns: tuple[str, ...], subfolder: str | None) -> list[str]:
    """File patterns relative to ``subfolder`` as patterns of the repo's paths."""
    return [f"{subfolder}/{pattern}" if subfolder else pattern for pattern in patterns]


class ModelFiles:
    """The folder of a model directory or Hub repo (and ``subfolder``), its files fetched as a
    loader asks for them, each once: a loader fetches a Hub repo's config.json first and then
    what the config names. Arguments as :func:`resolve_model_dir`'s.

    All of a Hub repo's files come from one commit: the first fetch's (a branch or tag is
    read once), so a push to the repo between two fetches cannot pair a config with other
    weights."""

    def __init__(
        self,
        path_or_repo: str | Path,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        token: str | None = None,
        subfolder: str | None = None,
        force_download: bool = False,
    ) -> None:
        self._source = path_or_repo
        self._options = {
            "cache_dir": cache_dir,
            "token": token,
            "subfolder": subfolder,
            "force_download": force_download,
        }
        self.revision = revision
        """The revision fetched: the one given until the first fetch of a Hub repo, then the
        commit that fetch read."""
        self.fetched: tuple[str, ...] = ()
        """The patterns of the files fetched so far."""

    def __call__(self, files: str | tuple[str, ...]) -> Path:
        """The folder with ``files`` (a pattern or patterns, :func:`resolve_model_dir`'s)
        fetched; the files of the patterns fetched by earlier calls are not fetched again."""
        patterns = (files,) if isinstance(files, str) else files
        folder = resolve_model_dir(
            self._source, self.revision, files=patterns, skip=self.fetched, **self._options
        )
        self.fetched += tuple(pattern for pattern in patterns if pattern not in self.fetched)
        self.revision = _snapshot_commit(folder) or self.revision
        return folder

    def config(self, kind: str | None) -> tuple[Path, dict[str, Any]]:
        """Fetch ``config.json`` and check it (:func:`read_plain_config`: ``kind``, any d3dface
        kind when None): the folder that holds it and its entries."""
        directory = self(CONFIG_NAME)
        return directory, read_plain_config(directory, kind)


def _snapshot_commit(folder: Path) -> str | None:
    """The commit of a Hub snapshot folder (``.../snapshots/<commit>/...``, where
    ``huggingface_hub`` keeps a download), or None for any other folder."""
    parts = folder.parts
    for name, following in itertools.pairwise(parts):
        if name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", following):
            return following
    return None


def _ask_hub(repo_id: str, revision: str | None, token: str | None) -> None:
    """Ask the Hub for ``repo_id`` at ``revision`` before a forced download.

    ``snapshot_download`` falls back to the cached snapshot, without a word, when it cannot
    reach the Hub (a connection error, a timeout, a Hub error status), which would ignore
    ``force_download``; ``HfApi.repo_info`` raises those errors instead.
    """
    from huggingface_hub import HfApi

    HfApi(token=token).repo_info(repo_id, revision=revision)


def _unreachable_message(repo_id: str, error: BaseException, force_download: bool) -> str:
    """The Hub could not be reached for ``repo_id``, in one line: for a forced download, that
    nothing was downloaded again; otherwise how to load offline instead."""
    if force_download:
        return (
            f"the Hugging Face Hub could not be reached ({one_line(error)}), so the files of "
            f"'{repo_id}' were not downloaded again (force_download); check the network and "
            "try again"
        )
    return (
        f"the Hugging Face Hub could not be reached to download '{repo_id}' ({one_line(error)}); "
        f"check the network and try again, or {OFFLINE_HINT}"
    )


SAVE_KEYS = ("format_version", "kind", "weights")
"""The config entries :func:`save_weights` writes itself."""


def descriptive_entries(config: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """The entries of a loaded ``config`` that its model does not write from itself (``own``:
    what its save writes) or :func:`save_weights` adds (:data:`SAVE_KEYS`): licence notices,
    units, build settings, training records, carried from loading to saving."""
    return {key: value for key, value in config.items() if key not in own and key not in SAVE_KEYS}


def save_tensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``tensors`` (and string ``metadata``) as a safetensors file.

    The bytes are made by ``safetensors.torch.save`` and written as any file is, so the file
    gets the permissions of the JSON files beside it: ``save_file`` of safetensors 0.8 writes
    through a temporary file of mode 0600, readable by its owner alone (safetensors issue
    #782)."""
    path.write_bytes(save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata))
    return path


def save_weights(
    directory: str | Path,
    tensors: dict[str, torch.Tensor],
    config: dict[str, Any],
    kind: str,
    weights_name: str = "model.safetensors",
) -> Path:
    """Write ``tensors`` as safetensors and ``config`` (+ kind, version, sha256) as JSON into
    ``directory`` (made if missing; ValueError when it cannot be, see
    :func:`~d3dface.out_folder.check_out_folder`)."""
    directory = check_out_folder(directory, "directory")
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / weights_name
    save_tensors(tensors, weights_path)
    full_config = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        **config,
        "weights": {weights_name: {"sha256": sha256_of(weights_path)}},
    }
    (directory / CONFIG_NAME).write_text(json.dumps(full_config, indent=2) + "\n")
    return directory


def read_config(directory: Path, kind: str) -> dict[str, Any]:
    """Parse and check ``config.json``: present, valid JSON, right ``kind`` and version, and
    a non-empty ``weights`` table of ``{"<file>.safetensors": {"sha256": "<hex>"}}``."""
    config = read_plain_config(directory, kind)
    entries = ConfigEntries(config, directory / CONFIG_NAME)
    weights = entries.value(
        "weights",
        lambda v: isinstance(v, dict) and len(v) > 0,
        'a table of the weight files, {"model.safetensors": {"sha256": "<64 hex digits>"}}',
    )
    table = ConfigEntries(weights, directory / CONFIG_NAME, "weights.")
    for name, meta in weights.items():
        if "/" in name or "\\" in name or not name.endswith(".safetensors"):
            raise WeightsError(
                f"'{directory / CONFIG_NAME}': key 'weights' names {json.dumps(name)}; it must "
                'name .safetensors files in the model\'s own folder, e.g. "model.safetensors"'
            )
        if not (
            isinstance(meta, dict)
            and isinstance(meta.get("sha256"), str)
            and re.fullmatch("[0-9a-f]{64}", meta["sha256"])
        ):
            raise table.problem(name, '{"sha256": "<the file\'s sha256, 64 hex digits>"}', meta)
    return config


def read_plain_config(directory: Path, kind: str | None) -> dict[str, Any]:
    """Parse and check ``config.json``: present, valid JSON, right ``kind`` (any d3dface
    kind when None) and version."""
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise WeightsError(f"'{directory}' has no {CONFIG_NAME}; it is not a saved d3dface model")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"'{config_path}' is not valid JSON: {one_line(err)}") from err
    if not isinstance(config, dict):
        raise WeightsError(f"'{config_path}' must hold a JSON object")
    entries = ConfigEntries(config, config_path)
    found = config.get("kind", MISSING)
    if not isinstance(found, str) or not found.startswith("d3dface."):
        has = "no key 'kind'" if found is MISSING else f"'kind' {json.dumps(found)}"
        wanted = f'"{kind}"' if kind else " or ".join(f'"{name}"' for name in KIND_LOADERS)
        raise WeightsError(
            f"'{config_path}' is not the config of a saved d3dface model: it has {has}, where "
            f'a d3dface model\'s config.json has "kind": {wanted}; give the folder of a '
            "d3dface model (or add the key if the folder holds one)"
        )
    if kind is not None and found != kind:
        raise WeightsError(
            f"'{directory}' holds a '{found}' model (its config.json's 'kind'), not a '{kind}' "
            "model; give the folder of the right model, or load it with its own class"
        )
    version = config.get("format_version", MISSING)
    if not _is_whole(version):
        raise entries.problem("format_version", f"the whole number {FORMAT_VERSION}", version)
    if version != FORMAT_VERSION:
        raise WeightsError(
            f"'{directory}' has format version {version}; this d3dface reads version "
            f"{FORMAT_VERSION}: rebuild or re-download the weights with a matching d3dface"
        )
    return config


def _refetch_hint(path: Path) -> str:
    """How to replace a corrupt weight file: re-download a Hub cache file, else rebuild."""
    repo = hub_cache_repo(path)
    if repo is None:
        return "re-download or rebuild it"
    blob = path.resolve()
    also = f" and the file it links to, '{blob}'," if blob != path else ""
    return (
        f"it is a cached download of Hub repo '{repo}': load it again with force_download=True "
        f"(command line: --force-download), or delete '{path}'{also} and load it again"
    )


def load_weights(directory: Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read the config and its (sha256-checked) weight files: returns (tensors, config)."""
    config = read_config(directory, kind)
    tensors: dict[str, torch.Tensor] = {}
    for name, meta in config["weights"].items():
        path = directory / name
        if not path.is_file():
            raise WeightsError(f"weight file '{path}' is missing")
        expected = meta["sha256"]
        actual = sha256_of(path)
        if expected != actual:
            raise WeightsError(
                f"weight file '{path}' is corrupt or was changed: sha256 {actual[:12]}... "
                f"does not match the config's {expected[:12]}...; {_refetch_hint(path)}"
            )
        try:
            tensors.update(load_file(str(path)))
        except (SafetensorError, OSError) as err:
            raise WeightsError(f"weight file '{path}' cannot be read: {one_line(err)}") from err
    return tensors, config


def require_tensors(tensors: dict[str, torch.Tensor], names: list[str], directory: Path) -> None:
    """Raise WeightsError naming every expected tensor that a weight file lacks."""
    missing = [name for name in names if name not in tensors]
    if missing:
        raise WeightsError(f"'{directory}' weights lack tensors: {', '.join(missing)}")


def require_vertex_count(entries: ConfigEntries, template: torch.Tensor, directory: Path) -> None:
    """Raise WeightsError unless the config's ``n_vertices`` (``entries``, read from
    ``directory``) is a whole number equal to the (V, 3) ``template``'s V."""
    n_vertices = template.shape[0]
    stated = entries.whole("n_vertices", should=f"the vertex count, {n_vertices} for its weights")
    if stated != n_vertices:
        raise WeightsError(
            f"'{directory}': config says {stated} vertices but the weights hold {n_vertices}; "
            "the files do not belong together"
        )


PIPELINE_KIND = "d3dface.pipeline"

PIPELINE_MODELS = {
    "face_model": ("the face model", "face_model"),
    "mesh_vae": ("the Mesh-VAE", "mesh_vae_lite"),
}
"""The keys of a pipeline's config.json that name the folders of its models -> (what the model
is, its folder in the shipped ``checkpoints/`` and the published Hub repo, for messages)."""


def pipeline_folder_name(config: dict[str, Any], directory: Path, role: str) -> str:
    """The folder of the ``role`` model (a key of :data:`PIPELINE_MODELS`) as the pipeline
    config ``config``, read from ``directory``, names it."""
    what, example = PIPELINE_MODELS[role]
    return ConfigEntries(config, directory / CONFIG_NAME).text(
        role, should=f'the name of {what}\'s folder, e.g. "{example}"'
    )


def require_model_folder(directory: Path, name: str, role: str, source: str) -> Path:
    """``directory / name``, the folder of a pipeline's ``role`` model that ``source`` names
    (``"key 'face_model'"``); WeightsError listing the folders there when it is missing.
    A Hub snapshot holds only the folders fetched, so for one the repo's file list is the
    place to look."""
    folder = directory / name
    if folder.is_dir():
        return folder
    repo = hub_cache_repo(directory)
    if repo is not None:
        raise WeightsError(
            f"Hub repo '{repo}' has no {role} folder '{name}' (named by {source}); see the "
            f"files on https://huggingface.co/{repo}"
        )
    present = sorted(path.name for path in directory.iterdir() if path.is_dir())
    raise WeightsError(
        f"'{directory}' has no {role} folder '{name}' (named by {source}); its folders "
        f"are: {', '.join(present) or 'none'}"
    )


def resolve_model_folder(path_or_repo: str | Path, role: str, **hub_kwargs: Any) -> Path:
    """The local folder of a model that a pipeline holds as ``role`` (``"face_model"``).

    That is the folder of ``path_or_repo`` (and ``subfolder``) itself, unless its config.json
    is a pipeline's: then it is the pipeline's folder for ``role``, as that config names it.
    Of a Hub repo, the config.json is fetched first, then only that model's files. The kind
    of the model is left to its loader to check. ``hub_kwargs``: :class:`ModelFiles`'s
    (revision, cache_dir, token, subfolder, force_download).
    """
    fetch = ModelFiles(path_or_repo, **hub_kwargs)
    directory, config = fetch.config(None)
    if config["kind"] != PIPELINE_KIND:
        return fetch("*")
    name = pipeline_folder_name(config, directory, role)
    return require_model_folder(fetch(f"{name}/*"), name, role, f"key '{role}'")


def fetch_pipeline_models(
    fetch: ModelFiles, config: dict[str, Any], directory: Path, vae: str | None = None
) -> tuple[Path, dict[str, str]]:
    """Fetch the folders of a pipeline's models (:data:`PIPELINE_MODELS`) as its config.json
    (``config``, read from ``directory``, fetched by ``fetch``) names them, or ``vae`` in
    place of the Mesh-VAE it names. Returns the pipeline's folder and the models' folder
    names by role; WeightsError naming a folder that is missing."""
    sources: dict[str, str] = {}
    folders: dict[str, str] = {}
    for role in PIPELINE_MODELS:
        if role == "mesh_vae" and vae:
            folders[role], sources[role] = vae, "the vae argument"
        else:
            folders[role] = pipeline_folder_name(config, directory, role)
            sources[role] = f"key '{role}'"
    directory = fetch(tuple(f"{name}/*" for name in folders.values()))
    for role, name in folders.items():
        require_model_folder(directory, name, role, sources[role])
    return directory, folders


KIND_LOADERS = {
    "d3dface.face_model": ("d3dface.facemodel.model", "FaceModel"),
    "d3dface.mesh_vae": ("d3dface.vae.model", "MeshVAE"),
    PIPELINE_KIND: ("d3dface.pipeline", "Diverse3DFace"),
}
"""Model kind -> (module, class) whose ``from_pretrained`` loads it."""

UPLOAD_PATTERNS = ("config.json", "*.safetensors", "*/config.json", "*/*.safetensors", "*/*.json")
"""Files of a pipeline directory that go to the Hub (weights, configs, build / training logs)."""


def from_pretrained(
    path_or_repo: str | Path,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    force_download: bool = False,
) -> Any:
    """Load whatever d3dface model a directory or Hub repo holds: the pipeline
    (:class:`~d3dface.pipeline.Diverse3DFace`), a face model or a Mesh-VAE, by its
    ``config.json``'s kind. ``force_download`` fetches a Hub repo's files again even when
    cached. Of a Hub repo, the config.json is fetched first, then what its model's loader
    needs (each file once), and the model is loaded from the local folder that holds them.
    Raises WeightsError when it is missing or unusable."""
    import importlib

    fetch = ModelFiles(path_or_repo, revision, cache_dir, token, subfolder, force_download)
    directory, config = fetch.config(None)
    kind = config["kind"]
    if kind not in KIND_LOADERS:
        raise WeightsError(f"'{directory}' holds a '{kind}' model, which this d3dface cannot load")
    if kind == PIPELINE_KIND:
        directory, _ = fetch_pipeline_models(fetch, config, directory)
    else:
        directory = fetch("*")
    module_name, class_name = KIND_LOADERS[kind]
    model_class = getattr(importlib.import_module(module_name), class_name)
    return model_class.from_pretrained(directory)


def push_to_hub(
    repo_id: str,
    source: str | Path = CHECKPOINTS_DIR,
    model_card: str | Path | None = None,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload d3dface weights",
) -> str:
    """Upload a pipeline directory (default: the shipped ``checkpoints/``) to a Hub repo.

    The directory is loaded first (every sha256 checked), then its configs, safetensors and
    logs are uploaded with ``model_card`` (default: the project's ``model_card.md``) as the
    repo's ``README.md``. Creates the repo when missing. Returns the commit URL.
    """
    from huggingface_hub import HfApi

    from d3dface.pipeline import Diverse3DFace

    source = Path(source)
    Diverse3DFace.from_pretrained(source)  # refuse to upload anything corrupt
    card = Path(model_card) if model_card else CHECKPOINTS_DIR.parent / "model_card.md"
    if not card.is_file():
        raise FileNotFoundError(f"model card '{card}' does not exist")
    with upload_failures(repo_id, source):
        return _upload(HfApi(token=token), repo_id, source, card, private, commit_message)


@contextmanager
def upload_failures(repo_id: str, source: Path) -> Iterator[None]:
    """Turn the failures of an upload of ``source`` to Hub repo ``repo_id`` into one-line
    RuntimeErrors saying what to check: an error status from the Hub, offline mode, no
    network, or a file that could not be read or staged."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled as err:
        raise RuntimeError(
            f"upload to '{repo_id}' needs the Hub, but HF_HUB_OFFLINE=1 keeps it from being "
            "asked: unset HF_HUB_OFFLINE to upload"
        ) from err
    except HfHubHTTPError as err:  # the Hub answered with an error status
        raise RuntimeError(
            f"upload to '{repo_id}' failed: {one_line(err)} (check the repo id, the token and "
            "your rights on the repo)"
        ) from err
    except network_errors() as err:
        raise RuntimeError(
            f"upload to '{repo_id}' failed: the Hugging Face Hub could not be reached "
            f"({one_line(err)}); check the network (and a proxy, HTTPS_PROXY) and try again"
        ) from err
    except OSError as err:
        raise RuntimeError(
            f"upload to '{repo_id}' failed: {one_line(err)} (could not read or stage the files "
            f"from '{source}'; check it and the temporary folder's free space)"
        ) from err


def _upload(
    api: Any, repo_id: str, source: Path, card: Path, private: bool, commit_message: str
) -> str:
    """Create the repo if needed and upload ``source``'s files plus ``card`` as README.md."""
    import shutil
    import tempfile

    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as staging:
        staged = Path(staging)
        for pattern in UPLOAD_PATTERNS:
            for path in source.glob(pattern):
                target = staged / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        shutil.copy2(card, staged / "README.md")
        commit = api.upload_folder(
            folder_path=staged, repo_id=repo_id, commit_message=commit_message
        )
    return str(getattr(commit, "commit_url", commit))
