"""The check every writer of a folder of results or weights makes before any work."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_out_folder"]


def check_out_folder(out: str | Path, name: str) -> Path:
    """Refuse a folder to write into that is a file or lies where nothing may be written (the
    folder itself is made later, by what writes into it). ``name``: how the caller's user
    gave it (``"--out"``, ``"out_dir"``), for the message. Returns ``out`` as a Path, a
    leading ``~`` expanded to the home folder (as a path to read from is).

    Raises:
        ValueError: ``out`` or the nearest existing folder above it is not a writable folder.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name} '{out}' is a file; give a folder (it is made if missing)")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name} '{out}' lies inside '{existing}', which is a file; give a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"cannot write into '{existing}' (no permission, or a read-only disk); "
            f"choose another {name} folder"
        )
    return out
