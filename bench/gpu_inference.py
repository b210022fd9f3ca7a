"""GPU benchmark of the runtime: generated tokens per second at batch 1, 32 and 128.

Run from the repository root on a machine with an NVIDIA GPU and ``onnxruntime-gpu`` installed::

    INFERENCE_PROVIDERS=CUDAExecutionProvider .venv/bin/python bench/gpu_inference.py [--model DIR]
        [--prompts 128] [--batches 1,32,128]

Without a GPU (no ``CUDAExecutionProvider`` in this onnxruntime build, or no device) it says so and
exits 0: CI never depends on a GPU. On a GPU it serves the fused-attention graph of the model's weights
(:mod:`inference.training.fused_graph`, MultiHeadAttention; its KV cache stays in device memory through
I/O binding between steps) with ``CUDAExecutionProvider``, runs the same ``report_draft`` prompts as
bench/inference.py (synthetic department, seed 2026) with continuous batching at each batch size, and
prints tokens/s, reports/s and the share of texts identical to the CPU engine on the same graph.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("CONCORDANCE_TLS", "0")
CUDA = "CUDAExecutionProvider"


def gpu_missing() -> str | None:
    """Why no GPU can be measured here, or None when one can."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} here has no {CUDA} (install onnxruntime-gpu on a GPU machine)"
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi: no NVIDIA GPU driver on this machine"
    return None


def device_name() -> str:
    """The GPU's name as nvidia-smi reports it."""
    result = subprocess.run(  # noqa: S603 - a fixed command
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown GPU"


def fused_copy(model_dir: Path, target: Path) -> Path:
    """The model's fused MHA graph beside its tokenizer and configs, in ``target``."""
    from inference.training.fused_graph import fuse_graph_file

    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json", "tokenizer.json"):
        shutil.copyfile(model_dir / name, target / name)
    config = json.loads((model_dir / "config.json").read_text())
    fuse_graph_file(model_dir / "model.onnx", config, target / "model.onnx")
    return target


def measure(directory: Path, prompts: list[str], batches: list[int], provider: str = CUDA) -> None:
    """Tokens/s on the GPU at each batch size, and agreement with the CPU engine."""
    from inference.runtime.engine import DecoderEngine

    gpu = DecoderEngine(directory, providers=[provider])
    if gpu.providers[0] != provider:
        raise SystemExit("onnxruntime fell back to the CPU: the CUDA provider could not start")
    cpu = DecoderEngine(directory)
    encoded = gpu.encode(prompts)
    limit = gpu.default_max_new_tokens
    reference = cpu.generate_ids(encoded[:16], limit, max_rows=16)
    gpu.generate_ids(encoded[:4], limit, max_rows=4)  # warm-up: CUDA kernels and the memory arena
    where = device_name() if provider == CUDA else "CPU (--dry-run-on-cpu: the code path, not a GPU figure)"
    print(f"# {dt.date.today()} on {platform.node()}: {where}")
    print(f"# {len(prompts)} report_draft prompts, max_new_tokens {limit}, fused MHA graph, fp32")
    print("| batch | tokens/s | reports/s | seconds | same text as CPU (first 16) |")
    print("|---|---|---|---|---|")
    for batch in batches:
        start = time.perf_counter()
        answers = gpu.generate_ids(encoded, limit, max_rows=batch)
        seconds = time.perf_counter() - start
        tokens = sum(len(a) for a in answers)
        same = sum(a == r for a, r in zip(answers, reference, strict=False)) / len(reference)
        rates = f"{tokens / seconds:.0f} | {len(prompts) / seconds:.1f} | {seconds:.1f}"
        print(f"| {batch} | {rates} | {100 * same:.0f}% |")


def _cpu_bench():
    """bench/inference.py as a module (by path: its name would shadow the ``inference`` package)."""
    spec = importlib.util.spec_from_file_location("bench_inference", ROOT / "bench" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="artifact directory (default: the shipped model)")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batches", default="1,32,128")
    parser.add_argument("--dry-run-on-cpu", action="store_true", help="run the same code on the CPU (tests)")
    args = parser.parse_args(argv)
    reason = None if args.dry_run_on_cpu else gpu_missing()
    if reason:
        print(f"# no GPU: {reason}; nothing measured (CPU figures: bench/inference.py)")
        return
    import django

    django.setup()
    from inference import prompts as prompt_module

    cpu_bench = _cpu_bench()  # the same model choice and prompt selection as bench/inference.py
    model_dir = args.model or cpu_bench.shipped_model()
    if model_dir is None:
        raise SystemExit("no shipped model under inference/artifacts/ and no --model given")
    fitting_inputs = cpu_bench.fitting_inputs
    generation = json.loads((model_dir / "generation_config.json").read_text())
    inputs = fitting_inputs(model_dir, args.prompts, int(generation.get("max_new_tokens") or 256), 2026)
    texts = [prompt_module.build_prompt("report_draft", x) for x in inputs]
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as scratch:
        provider = "CPUExecutionProvider" if args.dry_run_on_cpu else CUDA
        batches = [int(b) for b in args.batches.split(",")]
        measure(fused_copy(model_dir, Path(scratch) / "fused"), texts, batches, provider)


if __name__ == "__main__":
    main()
