"""The ``train`` extra is optional: without it the model commands start, and say how to install it.

An installation without torch is simulated the way Python itself honours: ``sys.modules[name] = None``
makes ``import name`` raise ModuleNotFoundError. Commands run in a subprocess (a fresh interpreter that
has never imported torch), or in-process with the extra's modules hidden for one test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from inference.training.common import TrainExtraMissing, train_extra
from portal.records.models import ModelVersion
from tests.model_fixtures import build_tiny_model

EXTRA = ("torch", "transformers", "optimum", "onnx")


def _manage_without(modules: tuple[str, ...], *argv: str) -> subprocess.CompletedProcess[str]:
    """``manage.py *argv`` in a fresh interpreter where ``modules`` cannot be imported."""
    code = (
        "import runpy, sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['manage.py', *{list(argv)!r}]\n"
        "runpy.run_path('manage.py', run_name='__main__')\n"
    )
    return subprocess.run(  # our own interpreter and code
        [sys.executable, "-c", code],
        cwd=django_settings.BASE_DIR,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_train_model_without_torch_stops_with_a_clear_command_error():
    result = _manage_without(("torch",), "train_model", "--specialty", "chest", "--version", "9.9.9")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "CommandError: manage.py train_model needs the optional 'train' extra" in result.stderr
    assert "torch is not installed" in result.stderr
    assert "pip install '.[train]'" in result.stderr
    assert "Traceback" not in result.stderr and "ModuleNotFoundError" not in result.stderr


def test_without_any_of_the_extra_the_command_still_shows_its_options_and_defaults():
    result = _manage_without(EXTRA, "train_model", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--max-steps" in result.stdout and "--eval-max" in result.stdout
    missing = _manage_without(EXTRA, "train_model", "--specialty", "all")
    assert missing.returncode == 1 and "pip install '.[train]'" in missing.stderr


def test_the_command_and_its_defaults_do_not_import_the_extra():
    code = (
        "import sys, django; django.setup();"
        "import inference.management.commands.train_model, inference.training.common;"
        "from inference.training.common import TrainSettings, DEFAULT_EVAL_MAX;"
        "assert TrainSettings().max_steps >= 1 and DEFAULT_EVAL_MAX >= 1;"
        f"bad = [m for m in {EXTRA!r} if m in sys.modules];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run(  # our own interpreter and code
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_guard_names_the_missing_module_and_lets_other_import_errors_through(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    # Checked before the block runs: nothing of the work starts.
    with pytest.raises(TrainExtraMissing, match=r"Building needs .*\(transformers is not installed\)"):
        with train_extra("Building"):
            pytest.fail("the guarded block must not run without the extra")
    # A part of the extra the caller did not name up front is still translated when its import fails.
    with pytest.raises(TrainExtraMissing, match=r"transformers is not installed.*pip install '\.\[train\]'"):
        with train_extra("Building", needs=("onnx",)):
            import transformers  # noqa: F401
    # A module missing that is no part of the extra is a bug of ours: it must not pass as advice.
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        with train_extra("Building", needs=()):
            import no_such_module_here  # noqa: F401


@pytest.mark.django_db
def test_registering_a_hugging_face_directory_without_the_extra_says_so_and_writes_nothing(
    monkeypatch, settings, tmp_path
):
    settings.VAR_DIR = tmp_path / "var"
    source = tmp_path / "hospital-gpt"
    shutil.copytree(build_tiny_model().torch_dir, source)
    monkeypatch.setitem(sys.modules, "optimum", None)
    monkeypatch.delitem(sys.modules, "inference.training.export", raising=False)  # import it afresh
    with pytest.raises(CommandError, match=r"pip install '\.\[train\]'"):
        call_command("register_model", str(source), "--specialty", "chest", "--version", "1.0.0")
    assert not ModelVersion.objects.exists()
    assert not Path(settings.VAR_DIR).exists() or not list(Path(settings.VAR_DIR).rglob("*"))
