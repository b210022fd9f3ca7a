"""The GPU benchmark says so and exits 0 without a GPU; its code path runs on the CPU when asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from inference import runtime
from tests.model_fixtures import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_inference.py"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our interpreter and script
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"},
    )


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a GPU is here")
def test_without_a_gpu_the_script_says_so_and_exits_0():
    result = run_script()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no GPU" in result.stdout and "nothing measured" in result.stdout


def test_the_gpu_code_path_runs_on_the_cpu_and_agrees_with_the_cpu_engine():
    model = build_tiny_model().artifact_dir
    result = run_script("--model", str(model), "--prompts", "5", "--batches", "1,4", "--dry-run-on-cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 4 |")
    ]
    assert len(rows) == 2 and all(row.rstrip().endswith("| 100% |") for row in rows)


@pytest.mark.django_db
def test_io_binding_keeps_the_cache_in_onnxruntime_memory_between_steps(tiny_model_version):
    engine = runtime.load(tiny_model_version)
    assert engine.device == "cpu"
    ids = np.array([[5, 6, 7]], dtype=np.int64)
    logits, present = engine.step(ids, np.ones_like(ids), np.arange(3).reshape(1, -1), engine.empty_past(1))
    assert logits.shape[0] == 1 and all(isinstance(value, ort.OrtValue) for value in present)
    assert present[0].shape()[2] == 3  # three tokens cached, not copied out to numpy
    logits2, present2 = engine.step(
        np.array([[int(np.argmax(logits))]]), np.ones((1, 4), dtype=np.int64), np.array([[3]]), present
    )
    assert present2[0].shape()[2] == 4
