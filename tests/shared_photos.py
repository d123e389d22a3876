"""The test photos beside the project (``../shared/test_images``, read-only): a test that
needs one is skipped, with the reason, where they are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

TEST_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "test_images"


def shared_photo(name: str) -> Path:
    """The path of the test photo ``name`` (``"obama.jpg"``); skips the calling test when the
    test photos are missing."""
    path = TEST_IMAGES / name
    if not path.is_file():
        pytest.skip(f"shared test photos not found at {TEST_IMAGES}")
    return path
