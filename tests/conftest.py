"""Test-wide settings: the Hugging Face Hub is never contacted (tests use local caches)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
