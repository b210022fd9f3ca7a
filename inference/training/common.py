"""What the build pipeline and ``register_model`` share, with no torch import: errors, names, places."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from django.conf import settings as django_settings

DEFAULT_NAME = "concordance-draft"
_SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LIBRARIES = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "tokenizers", "numpy")


class TrainingError(ValueError):
    """The request cannot be built or registered (bad options, empty corpus, not a model); nothing was
    written or registered."""


def label_check(label: str, value: str) -> None:
    """A model name or version becomes a directory name: letters, digits, '.', '_' and '-' only."""
    if not isinstance(value, str) or not _SAFE_LABEL.match(value):
        raise TrainingError(f"The {label} may hold letters, digits, '.', '_' and '-' only (at most 64).")


def default_version() -> str:
    """A version label from the build time (UTC), when none is given."""
    return dt.datetime.now(dt.UTC).strftime("%Y.%m.%d.%H%M%S")


def default_out_dir(name: str, version: str) -> Path:
    """Where run-time builds go: ``$CONCORDANCE_VAR_DIR/models/<name>-<version>/``."""
    return Path(django_settings.VAR_DIR) / "models" / f"{name}-{version}"


def library_versions() -> dict[str, str]:
    """Installed versions of everything that shaped the bytes of the model."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@contextmanager
def staged_directory(directory: Path) -> Iterator[Path]:
    """A hidden staging directory beside ``directory``: renamed into place when the block succeeds,
    removed when it fails, so a model directory is never seen half-written."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=directory.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; workers must read it
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
