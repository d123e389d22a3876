"""Publish the app as a Hugging Face Space: the project's own files, uploaded with
``huggingface_hub``.

The Hub refuses a plain ``git push`` of a file over 10 MB that is not stored with Git LFS, and
the shipped weight files are larger; ``HfApi.upload_folder`` stores them as the Hub wants, so
a Space is published in one command (``python -m d3dface push-space --repo-id owner/name``).
"""

from __future__ import annotations

from pathlib import Path

from d3dface.hub import CHECKPOINTS_DIR, upload_failures

PROJECT_DIR = CHECKPOINTS_DIR.parent
"""The project folder: ``space_app.py``, ``README.md`` (the Space's front matter), ..."""

SPACE_PATTERNS = (
    "README.md",
    "LICENSE",
    "model_card.md",
    "requirements.txt",
    "pyproject.toml",
    "space_app.py",
    "d3dface/*.py",
    "checkpoints/*.json",
    "checkpoints/*.safetensors",
    "examples/*",
    "bench/README.md",
    "bench/results/*",
)
"""The files a Space needs (relative to the project folder; ``*`` spans folders): the app, the
package, the weights, the examples, and the pages the README links to. Not the tests."""

_IGNORED = ("*__pycache__/*",)
"""Files a pattern could select but a Space must not get: Python's bytecode caches."""


def space_files(project: Path = PROJECT_DIR) -> list[Path]:
    """The files of ``project`` that :data:`SPACE_PATTERNS` select, relative to it, sorted.

    Raises:
        FileNotFoundError: ``project`` lacks ``space_app.py`` (it is not the project folder,
            e.g. an installed package's), or the README's front matter names no Gradio app.
    """
    from huggingface_hub.repocard import metadata_load
    from huggingface_hub.utils import filter_repo_objects

    project = Path(project)
    app = project / "space_app.py"
    if not app.is_file():
        raise FileNotFoundError(
            f"'{project}' has no space_app.py, so it is not the d3dface project folder; run "
            "push-space from a clone of the project (or give it with --project)"
        )
    front = metadata_load(project / "README.md") if (project / "README.md").is_file() else None
    if not front or front.get("sdk") != "gradio" or front.get("app_file") != app.name:
        raise FileNotFoundError(
            f"'{project / 'README.md'}' lacks the Space's front matter (sdk: gradio, app_file: "
            f"{app.name}); restore the project's README.md"
        )
    present = [
        path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file()
    ]
    chosen = filter_repo_objects(
        present, allow_patterns=list(SPACE_PATTERNS), ignore_patterns=list(_IGNORED)
    )
    return sorted(Path(name) for name in chosen)


def push_space(
    repo_id: str,
    project: str | Path = PROJECT_DIR,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload the d3dface app",
) -> tuple[str, list[Path]]:
    """Publish ``project``'s app as the Gradio Space ``repo_id`` (created when missing).

    The shipped weights are loaded first (every sha256 checked), so nothing corrupt goes up.
    The Space then holds exactly :func:`space_files`: files that match
    :data:`SPACE_PATTERNS` on the Space but no longer in the project are deleted. Returns the
    Space's address and the files published (relative to ``project``). Failures are one-line
    RuntimeErrors (see :func:`d3dface.hub.upload_failures`).
    """
    from huggingface_hub import HfApi

    from d3dface.pipeline import Diverse3DFace

    project = Path(project)
    files = space_files(project)
    Diverse3DFace.from_pretrained(project / CHECKPOINTS_DIR.name)  # refuse corrupt weights
    with upload_failures(repo_id, project):
        api = HfApi(token=token)
        api.create_repo(
            repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True
        )
        api.upload_folder(
            folder_path=project,
            repo_id=repo_id,
            repo_type="space",
            allow_patterns=[path.as_posix() for path in files],
            delete_patterns=list(SPACE_PATTERNS),
            commit_message=commit_message,
        )
    return f"https://huggingface.co/spaces/{repo_id}", files
