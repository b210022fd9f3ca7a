"""Fixtures of the registry, runtime and drafting tests: the tiny model, and a private copy to tamper with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.model_fixtures import build_tiny_model, default_model_version, tiny_model_version  # noqa: F401


@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    """A private copy of the tiny model's artifact directory (tests may damage it)."""
    target = tmp_path / "tiny-copy"
    shutil.copytree(build_tiny_model().artifact_dir, target)
    return target


@pytest.fixture(autouse=True)
def _fresh_sessions():
    """Each test starts with no loaded sessions, so first-load checks run where a test expects them."""
    from inference import runtime

    runtime.clear_cache()
    yield
    runtime.clear_cache()
