"""Fixtures of the training tests: a small seeded department and a helper that runs a tiny build."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

# The shipped default model and the tiny random model, for tests that compare against them.
from tests.model_fixtures import build_tiny_model, tiny_model_version  # noqa: F401

TINY_STEPS = 60


@pytest.fixture
def department(db) -> None:
    """A small synthetic department: 160 studies with AI drafts and signed reports (seed 11).

    Template drafts, as the documented rebuild uses: a draft then renders its inputs faithfully, which
    is what the pipeline's selection of agreeing studies relies on.
    """
    call_command("seed_demo", studies=160, seed=11, drafts="template", stdout=io.StringIO())


@pytest.fixture
def train(tmp_path):
    """``train(label, **options)``: a tiny build (version ``label``) into ``tmp_path/<label>``; returns
    (directory, output). ``options`` override the command's options, ``version`` included."""

    def run(label: str, **overrides) -> tuple[Path, str]:
        out = tmp_path / label
        options = {
            "specialty": ["all"],
            "size": "tiny",
            "max_steps": TINY_STEPS,
            "batch_size": 8,
            "threads": 1,
            "seed": 5,
            "eval_max": 4,
            "name": "tiny-build",
            "version": label,
            "out": out,
            **overrides,
        }
        stdout = io.StringIO()
        call_command("train_model", stdout=stdout, **options)
        return out, stdout.getvalue()

    return run
