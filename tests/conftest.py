"""Test-wide settings: the Hugging Face Hub is never contacted (tests use local caches);
MKL keeps its thread count (reproducible results)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MKL_NUM_THREADS", "1")  # one thread: reproducible (d3dface/__init__.py)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # imported after the environment is set

from d3dface.facemodel.model import FaceModel
from d3dface.hub import CHECKPOINTS_DIR


@pytest.fixture(scope="session")
def face_model() -> FaceModel:
    """The shipped face model (``checkpoints/face_model``)."""
    return FaceModel.from_pretrained(CHECKPOINTS_DIR / "face_model")
