"""d3dface: diverse 3D face reconstructions from one partly hidden face photo.

``from d3dface import Diverse3DFace`` gives the whole pipeline (imported on first use, so
that ``import d3dface`` stays light).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Reproducible results on CPU: multi-threaded MKL matrix products changed the last bits of a
# fit from run to run on a loaded machine (measured: 1 run in 3), while torch's own threads
# did not; one MKL thread cost no speed on the Mesh-VAE decode (28 vs 32 ms). Read when MKL
# starts, so it takes effect when d3dface is imported before torch first multiplies.
os.environ.setdefault("MKL_NUM_THREADS", "1")

__version__ = "0.1.0"
__all__ = ["Diverse3DFace", "FaceResult", "__version__"]

if TYPE_CHECKING:
    from d3dface.pipeline import Diverse3DFace, FaceResult


def __getattr__(name: str) -> Any:
    if name in ("Diverse3DFace", "FaceResult"):
        from d3dface import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'd3dface' has no attribute {name!r}")
