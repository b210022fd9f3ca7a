"""What the build pipeline and the model commands share, with no torch import: errors, names, places,
the build request and its hyperparameters, and the one guard that turns a missing ``train`` extra into a
clear :class:`TrainExtraMissing`.

Nothing here may import the extra (torch, transformers, optimum, onnx): the commands import this module
at start-up, in installations without it too, to declare their options and defaults.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from django.conf import settings as django_settings

DEFAULT_NAME = "concordance-draft"
#: Held-out pairs decoded per kind; enough for a share to two digits, bounded for build time.
DEFAULT_EVAL_MAX = 300
#: The top-level modules of the optional ``train`` extra (pyproject.toml): serving needs none of them.
TRAIN_EXTRA_MODULES = frozenset({"torch", "transformers", "optimum", "onnx"})
_SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LIBRARIES = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "tokenizers", "numpy")


class TrainingError(ValueError):
    """The request cannot be built or registered (bad options, empty corpus, not a model); nothing was
    written or registered."""


class TrainExtraMissing(TrainingError):
    """The work needs the optional ``train`` extra, which is not installed; nothing was written."""


def _extra_missing(purpose: str, missing: Iterable[str]) -> TrainExtraMissing:
    names = sorted(set(missing))
    verb = "is" if len(names) == 1 else "are"
    return TrainExtraMissing(
        f"{purpose} needs the optional 'train' extra ({', '.join(names)} {verb} not installed). "
        "Install it with: pip install '.[train]'"
    )


@contextmanager
def train_extra(purpose: str, needs: Iterable[str] = TRAIN_EXTRA_MODULES) -> Iterator[None]:
    """Import the ``train`` extra inside this block; a missing part of it is :class:`TrainExtraMissing`.

    The extra is optional (a serving installation has no torch), so its modules are imported only where
    the work needs them, inside this guard. ``needs`` is checked first, without importing anything:
    with torch absent but transformers present, transformers imports "successfully" and optimum then
    fails with an unrelated ImportError, so waiting for the error would name the wrong cause. A module
    missing that is no part of the extra is a bug and propagates.
    """
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        raise _extra_missing(purpose, missing)
    try:
        yield
    except ModuleNotFoundError as exc:
        name = (exc.name or "").partition(".")[0]
        if name not in TRAIN_EXTRA_MODULES:
            raise
        raise _extra_missing(purpose, [name]) from exc


@dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters of one training run (all recorded in the model card)."""

    vocab_size: int = 2048
    n_positions: int = 512
    n_embd: int = 192
    n_layer: int = 6
    n_head: int = 6
    max_steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 60
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    dropout: float = 0.0
    seed: int = 7
    threads: int = 1

    def as_dict(self) -> dict[str, float | int]:
        """Plain values for the card."""
        return asdict(self)


@dataclass(frozen=True)
class BuildRequest:
    """Everything one build needs; ``out_dir`` None means ``$CONCORDANCE_VAR_DIR/models/<name>-<version>``."""

    specialties: Sequence[str]
    name: str = DEFAULT_NAME
    version: str = ""
    since: dt.date | None = None
    until: dt.date | None = None
    out_dir: Path | None = None
    settings: TrainSettings = field(default_factory=TrainSettings)
    eval_max: int = DEFAULT_EVAL_MAX
    kinds: Sequence[str] | None = None
    activate: bool = False
    command: str = ""


def command_line() -> str:
    """The command as typed (program name shortened), for the card."""
    return " ".join(["python manage.py", *sys.argv[1:]]) if len(sys.argv) > 1 else ""


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
