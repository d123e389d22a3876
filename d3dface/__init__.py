"""d3dface: diverse 3D face reconstructions from one partly hidden face photo.

``from d3dface import Diverse3DFace`` gives the whole pipeline (imported on first use, so
that ``import d3dface`` stays light).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

# Reproducible results on CPU: with two threads a fit changed in its last bits from run to run
# on a loaded machine (1 run in 3 of tests/test_fitting.py::test_same_input_gives_the_same_fit);
# with one thread it did not. torch takes its default thread count from MKL_NUM_THREADS, so
# this makes d3dface single-threaded unless the caller sets a thread count (an explicit
# torch.set_num_threads(n) is faster but not bit-reproducible). Photo to 8 meshes: 10.4 s on
# one thread, 8.0 s on two (python -m d3dface.bench speed --threads 1 / --threads 2). torch
# reads it when it starts; when torch was imported first, it is set here instead (with
# `import torch` first, two threads gave samples up to 0.47 mm apart from one call to the next).
_THREADS_CHOSEN = "MKL_NUM_THREADS" in os.environ
os.environ.setdefault("MKL_NUM_THREADS", "1")
if not _THREADS_CHOSEN and "torch" in sys.modules:
    sys.modules["torch"].set_num_threads(1)

__version__ = "0.1.0"
__all__ = ["Diverse3DFace", "FaceResult", "__version__"]

if TYPE_CHECKING:
    from d3dface.pipeline import Diverse3DFace, FaceResult


_LAZY = ("Diverse3DFace", "FaceResult")
"""Names imported from :mod:`d3dface.pipeline` on first use."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from d3dface import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'd3dface' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names with the lazy ones (tab completion and ``dir(d3dface)`` list
    ``Diverse3DFace`` before its first use)."""
    return sorted({*globals(), *_LAZY})
