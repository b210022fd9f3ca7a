"""Benchmark of the model runtime against PyTorch eager and optimum's ORTModelForCausalLM.

Run from the repository root (needs the ``train`` extra for the two baselines)::

    .venv/bin/python bench/inference.py [--model DIR] [--prompts 64] [--latency 32] [--batches 1,8,32]

On the same model and the same prompts, each engine runs in its OWN subprocess (so its peak memory is
its own) with one intra-op thread:

- ``pytorch``: transformers ``generate`` (greedy, KV cache) on the PyTorch weights, eager mode;
- ``optimum``: ``optimum.onnxruntime.ORTModelForCausalLM.generate`` on the shipped ``model.onnx``;
- ``runtime``: :class:`inference.runtime.engine.DecoderEngine` (onnxruntime + numpy + tokenizers),
  loaded by file path so that no Django, torch or optimum is imported.

Measured: import and load time, batch-1 latency p50/p95 over ``--latency`` prompts, reports per
second at each batch size over all ``--prompts`` prompts, peak RSS of the process, and the share of
texts identical to PyTorch fp32 at batch 1 (must be 100%).

The model is ``--model``, else the newest shipped model under ``inference/artifacts/``, else the tiny
random test model (tests/model_fixtures.py; the output says so). A shipped model carries no PyTorch
weights: they are rebuilt from the ONNX graph's initialisers (GPT-2 layout) and checked against
onnxruntime's logits before use. Prompts are ``report_draft`` prompts of a synthetic department
(seed 2026, not the demo's seed 7, so they are not training prompts).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("CONCORDANCE_TLS", "0")
ENGINES = ("pytorch", "optimum", "runtime", "fused", "static", "int8")
DEFAULT_ENGINES = ("pytorch", "optimum", "runtime", "fused", "static")
#: Engines that are this project's runtime, each on its own graph of the same weights.
RUNTIME_ENGINES = ("runtime", "fused", "static", "int8")


# --- the parent: model, prompts, one subprocess per engine, the table ---------------------------------


def shipped_model() -> Path | None:
    """The serving default: the shipped model with the highest version (as the registry picks it)."""
    root = ROOT / "inference" / "artifacts"
    found = [p for p in root.glob("*") if (p / "model.onnx").is_file()] if root.is_dir() else []

    def version_key(directory: Path) -> tuple[int, ...]:
        version = json.loads((directory / "card.json").read_text()).get("version", "0")
        return tuple(int(part) if part.isdigit() else -1 for part in str(version).split("."))

    return max(found, key=version_key) if found else None


def fitting_inputs(model_dir: Path, count: int, max_new_tokens: int, seed: int) -> list[dict[str, Any]]:
    """Inputs of ``count`` synthetic studies whose prompt leaves room for a full answer in the context."""
    from tokenizers import Tokenizer

    from inference.prompts import build_prompt
    from portal.demo.synthetic.generate import generate_department

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    config = json.loads((model_dir / "config.json").read_text())
    window = config.get("n_positions") or config.get("max_position_embeddings") or 1_000_000
    studies = generate_department(studies=count * 3, seed=seed).studies
    fitting = [
        s.ai_inputs
        for s in studies
        if len(tokenizer.encode(build_prompt("report_draft", s.ai_inputs)).ids) + max_new_tokens <= window
    ]
    if len(fitting) < count:
        raise SystemExit(f"only {len(fitting)} of {len(studies)} prompts fit the {window}-token context")
    return fitting[:count]


def torch_weights_from_onnx(onnx_dir: Path, out_dir: Path) -> None:
    """Rebuild a GPT-2's PyTorch weights from the initialisers of its (optimised) ONNX export.

    optimum names the initialisers after the PyTorch parameters; the LM head is tied to the token
    embedding. Checked against onnxruntime's logits: a mismatch raises rather than bench a wrong model.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from transformers import AutoConfig, GPT2LMHeadModel

    from inference.training.fused_graph import gpt2_weights_from_onnx

    config = AutoConfig.from_pretrained(onnx_dir)
    if config.model_type != "gpt2":
        raise SystemExit(f"cannot rebuild PyTorch weights for model type {config.model_type!r}")
    model = GPT2LMHeadModel(config).eval()
    found = gpt2_weights_from_onnx(onnx.load(str(onnx_dir / "model.onnx")), config.n_layer)
    state = model.state_dict()
    missing = []
    for name, tensor in state.items():
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        value = found.get(name)
        if value is None or tuple(value.shape) != tuple(tensor.shape):
            missing.append(name)
            continue
        state[name] = torch.from_numpy(value.copy())
    if missing:
        raise SystemExit(f"ONNX initialisers missing for {len(missing)} parameters, e.g. {missing[:3]}")
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    session = ort.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.arange(3, 40, dtype=np.int64).reshape(1, -1) % config.vocab_size
    feed = {"input_ids": ids}
    names = {i.name for i in session.get_inputs()}
    static = "seqlens_k" in names  # a static-cache graph (the shipped 1.1.1): lengths, not a mask
    if static:
        feed["seqlens_k"] = np.array([ids.shape[1] - 1], dtype=np.int32)
        feed["total_sequence_length"] = np.array(ids.shape[1], dtype=np.int32)
    else:
        feed["attention_mask"] = np.ones_like(ids)
    if "position_ids" in names:
        feed["position_ids"] = np.arange(ids.shape[1], dtype=np.int64).reshape(1, -1)
    head_dim = config.n_embd // config.n_head
    cached = ids.shape[1] if static else 0  # a static cache is as long as what it will hold
    for layer in range(config.n_layer):
        for part in ("key", "value"):
            shape = (1, config.n_head, cached, head_dim)
            feed[f"past_key_values.{layer}.{part}"] = np.zeros(shape, np.float32)
    onnx_logits = session.run(["logits"], feed)[0]
    with torch.no_grad():  # a fused graph returns the last position(s) only
        torch_logits = model(torch.from_numpy(ids)).logits.numpy()[:, -onnx_logits.shape[1] :]
    gap = float(np.abs(onnx_logits - torch_logits).max())
    if gap > 1e-3:
        raise SystemExit(f"rebuilt PyTorch weights disagree with the ONNX graph (max logit gap {gap})")
    model.save_pretrained(out_dir)
    print(f"rebuilt PyTorch weights from the ONNX initialisers (max logit gap {gap:.2e})", file=sys.stderr)


def variant_dirs(model_dir: Path, scratch: Path, engines: list[str]) -> dict[str, Path]:
    """The artifact directory each ONNX engine runs: the model as given, its fused graph, its int8 graph."""
    from inference.training.fused_graph import fuse_graph_file
    from inference.training.variants import COPIED_FILES, _build_graph

    dirs = {"runtime": model_dir, "optimum": model_dir}
    for variant in ("fused", "static", "int8"):
        if variant not in engines:
            continue
        target = scratch / variant
        target.mkdir()
        for name in COPIED_FILES:
            shutil.copyfile(model_dir / name, target / name)
        if variant in ("fused", "static"):
            fuse_graph_file(
                model_dir / "model.onnx",
                json.loads((model_dir / "config.json").read_text()),
                target / "model.onnx",
                static_cache=variant == "static",
            )
        else:
            _build_graph("int8", model_dir, target)
        card = (
            json.loads((model_dir / "card.json").read_text()) if (model_dir / "card.json").is_file() else {}
        )
        card = {k: v for k, v in card.items() if k != "files"}  # the graph differs: no stale hashes
        card["version"] = f"{card.get('version', '0')}-{variant}"
        card["quantisation"] = "int8" if variant == "int8" else card.get("quantisation", "fp32")
        (target / "card.json").write_text(json.dumps(card))
        dirs[variant] = target
    return dirs


def optimised_node_count(graph: Path) -> int:
    """Nodes of the graph as onnxruntime runs it (after its own optimisation): kernels per step."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as scratch:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(scratch) / "optimised.onnx")
        ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        return len(onnx.load(options.optimized_model_filepath).graph.node)


def run_worker(engine: str, spec: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        result = subprocess.run(  # this interpreter, this script
            [sys.executable, __file__, "--worker", engine, "--spec", handle.name],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"])},
        )
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise SystemExit(f"{engine} worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="artifact directory (default: the shipped model)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--latency", type=int, default=32, help="prompts timed one by one at batch 1")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--engines", default=",".join(DEFAULT_ENGINES), help=f"of {', '.join(ENGINES)}")
    parser.add_argument("--memory-budget-mb", type=int, default=64, help="runtime KV-cache budget (0: none)")
    parser.add_argument(
        "--running-rows", type=int, default=0, help="static cache: most rows at once (0: the default)"
    )
    parser.add_argument("--api", type=int, default=50, help="POST /api/v1/drafts requests to time (0: skip)")
    parser.add_argument("--api-engine", default="static", choices=RUNTIME_ENGINES, help="graph the API runs")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(Path(args.spec).read_text()))))
        return

    import django

    django.setup()
    model_dir, torch_dir, note = args.model, None, ""
    if model_dir is None:
        model_dir = shipped_model()
    scratch = tempfile.TemporaryDirectory(prefix="bench-inference-")
    if model_dir is None:
        from tests.model_fixtures import build_tiny_model

        tiny = build_tiny_model()
        model_dir, torch_dir = tiny.artifact_dir, tiny.torch_dir
        note = "NO shipped model found: the tiny RANDOM test model (2 layers, 32 wide) was used"
    engines = [e for e in args.engines.split(",") if e]
    if torch_dir is None and "pytorch" in engines:
        torch_dir = Path(scratch.name) / "torch"
        torch_weights_from_onnx(model_dir, torch_dir)
    generation = json.loads((model_dir / "generation_config.json").read_text())
    max_new = int(generation.get("max_new_tokens") or 256)
    from inference.prompts import build_prompt
    from inference.runtime.engine import DEFAULT_RUNNING_ROWS

    prompts = [
        build_prompt("report_draft", x) for x in fitting_inputs(model_dir, args.prompts, max_new, 2026)
    ]
    model_dirs = variant_dirs(model_dir, Path(scratch.name), [*engines, args.api_engine])
    spec = {
        "model_dir": str(model_dir),
        "model_dirs": {engine: str(path) for engine, path in model_dirs.items()},
        "kernels": {engine: optimised_node_count(path / "model.onnx") for engine, path in model_dirs.items()},
        "memory_budget_mb": args.memory_budget_mb,
        "running_rows": args.running_rows or DEFAULT_RUNNING_ROWS,
        "torch_dir": str(torch_dir) if torch_dir else "",
        "prompts": prompts,
        "latency": min(args.latency, len(prompts)),
        "batches": [int(b) for b in args.batches.split(",")],
        "threads": args.threads,
        "max_new_tokens": max_new,
    }
    results = {engine: run_worker(engine, spec) for engine in engines}
    report(model_dir, note, spec, results, " ".join(["bench/inference.py", *(argv or sys.argv[1:])]))
    if args.api:
        api_dir = model_dirs.get(args.api_engine, model_dir)
        print(f"# the API below serves the {args.api_engine} graph ({api_dir.name})")
        api_latency(api_dir, fitting_inputs(model_dir, args.api + 1, max_new, 2027))
    scratch.cleanup()


def report(model_dir: Path, note: str, spec: dict, results: dict[str, dict], command: str) -> None:
    card = json.loads((model_dir / "card.json").read_text()) if (model_dir / "card.json").is_file() else {}
    size_mb = (model_dir / "model.onnx").stat().st_size / 1e6
    reference = results.get("pytorch", {}).get("texts", {}).get("1")
    tokens = results[next(iter(results))]["completion_tokens"]
    machine = f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})"
    print(f"# {dt.date.today()} on {machine}")
    print(f"# command: .venv/bin/python {command}")
    print(
        f"# model: {card.get('name', model_dir.name)} {card.get('version', '')} ({size_mb:.1f} MB model.onnx)"
    )
    if note:
        print(f"# {note}")
    print(
        f"# {len(spec['prompts'])} report_draft prompts, max_new_tokens {spec['max_new_tokens']}, "
        f"mean answer {statistics.mean(tokens):.1f} tokens, {spec['threads']} thread(s) per process"
    )
    header = ["engine", "kernels/step", "clock", "import+load s", "b1 p50 ms", "b1 p95 ms"]
    header += [f"reports/s b{b}" for b in spec["batches"]] + ["peak RSS MB", "same as PyTorch b1"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for engine, r in results.items():
        same = "-"
        if reference:
            shares = []
            for b in spec["batches"]:
                texts = r["texts"][str(b)]
                shares.append(sum(a == t for a, t in zip(reference, texts, strict=True)) / len(reference))
            same = " / ".join(f"{100 * s:.0f}%" for s in shares)
        for clock, prefix, rate in (("cpu", "cpu_", "cpu_throughput"), ("wall", "", "throughput")):
            row = [
                engine,
                str(spec["kernels"].get(engine, "-")),
                clock,
                f"{r['import_s']:.2f}",
                f"{r[prefix + 'p50_ms']:.1f}",
                f"{r[prefix + 'p95_ms']:.1f}",
                *[f"{r[rate][str(b)]:.1f}" for b in spec["batches"]],
                f"{r['peak_rss_mb']:.0f}",
                same,
            ]
            print("| " + " | ".join(row) + " |")
    for ours_name in [e for e in RUNTIME_ENGINES if e in results and "pytorch" in results]:
        torch_r, ours = results["pytorch"], results[ours_name]
        speedup = torch_r["cpu_p50_ms"] / ours["cpu_p50_ms"]
        print(
            f"# {ours_name} vs PyTorch eager (CPU time): batch-1 latency p50 {speedup:.1f}x faster; "
            + ", ".join(
                f"b{b} throughput {ours['cpu_throughput'][str(b)] / torch_r['cpu_throughput'][str(b)]:.1f}x"
                for b in spec["batches"]
            )
        )
    print(
        f"# runtime engines: continuous batching (at most bN rows at once; static cache: at most "
        f"{spec['running_rows']}), KV-cache budget {spec['memory_budget_mb']} MB; "
        "'kernels/step': nodes of the graph onnxruntime runs"
    )
    print("# 'same as PyTorch b1': share of texts byte-identical to PyTorch fp32 at batch 1, per batch size")


def api_latency(model_dir: Path, inputs: list[dict[str, Any]]) -> None:
    """End-to-end ``POST /api/v1/drafts`` latency: auth, validation, generation, storage and audit.

    On a throwaway test database (as the test runner makes one), through Django's test client, one
    request at a time, each with other inputs (no cache can help); the first request loads the model.
    """
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test.utils import setup_test_environment
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from audit.log import SYSTEM
    from inference import registry
    from portal.records import services
    from portal.records.ingest.payloads import PatientPayload, StudyPayload

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        registry.model_version_register_directory(
            directory=model_dir, status="active", actor=None, context=SYSTEM, specialties=[]
        )
        user = User.objects.create_user("bench-ris")
        user.groups.add(Group.objects.get_or_create(name="integration")[0])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        for index, study_inputs in enumerate(inputs):
            services.study_ingest(
                payload=StudyPayload(
                    accession_number=f"BENCH{index}",
                    study_instance_uid=None,
                    patient=PatientPayload(
                        mrn=f"BENCHMRN{index}", family_name="", given_name="", birth_date=None, sex="U"
                    ),
                    modality=study_inputs["modality"],
                    body_part=study_inputs["body_part"],
                    specialty=study_inputs["specialty"],
                    study_datetime=None,
                    description=study_inputs["study_description"],
                    priority="stat",
                    referring_physician="",
                    dicom_header={},
                ),
                actor=None,
                context=SYSTEM,
            )
        timings, cpu_timings, stored = [], [], 0
        for index, study_inputs in enumerate(inputs):
            body = {"study": f"BENCH{index}", "kind": "report_draft", "inputs": study_inputs}
            start, cpu = time.perf_counter(), time.process_time()
            response = client.post("/api/v1/drafts", body, format="json")
            elapsed = (time.perf_counter() - start) * 1000
            elapsed_cpu = (time.process_time() - cpu) * 1000
            if response.status_code not in (201, 422):  # 422: the model wrote nothing (random models)
                raise SystemExit(f"draft request failed: {response.status_code} {response.content[:300]!r}")
            stored += response.status_code == 201
            if index:  # the first request loads and verifies the model
                timings.append(elapsed)
                cpu_timings.append(elapsed_cpu)
        print(
            f"# POST /api/v1/drafts end to end ({len(timings)} requests, SQLite, model loaded): "
            f"p50 {statistics.median(timings):.1f} ms, p95 {_percentile(timings, 0.95):.1f} ms, "
            f"max {max(timings):.1f} ms; CPU time p50 {statistics.median(cpu_timings):.1f} ms, "
            f"p95 {_percentile(cpu_timings, 0.95):.1f} ms; {stored} drafts stored"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


# --- one engine, in its own process -----------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program (``VmHWM``).

    Not ``ru_maxrss``: Linux keeps that high-water mark across ``execve``, so a worker forked from a
    parent that had imported torch reported the parent's ~500 MB whatever it used itself.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(engine: str, spec: dict[str, Any]) -> dict[str, Any]:
    began = time.perf_counter()
    if engine in RUNTIME_ENGINES:
        generate, encode_decode = _runtime_engine(spec, engine)
    else:
        generate, encode_decode = _torch_like_engine(engine, spec)
    loaded = time.perf_counter()
    encode, decode = encode_decode
    prompts = [encode(p) for p in spec["prompts"]]
    limit = spec["max_new_tokens"]
    generate(prompts[:2], limit)  # warm-up
    # Wall time and this process's CPU time: on a shared machine the CPU time is what an idle core
    # would take (one thread per process), the wall time what this run got.
    latencies, cpu_latencies = [], []
    for prompt in prompts[: spec["latency"]]:
        start, cpu = time.perf_counter(), time.process_time()
        generate([prompt], limit)
        latencies.append((time.perf_counter() - start) * 1000)
        cpu_latencies.append((time.process_time() - cpu) * 1000)
    throughput, cpu_throughput, texts, tokens = {}, {}, {}, []
    for batch in spec["batches"]:
        start, cpu = time.perf_counter(), time.process_time()
        answers: list[list[int]] = []
        if engine in RUNTIME_ENGINES:  # continuous batching: every prompt, at most `batch` rows at once
            answers = generate(prompts, limit, batch)
        else:  # transformers' generate: static batches
            for i in range(0, len(prompts), batch):
                answers += generate(prompts[i : i + batch], limit)
        throughput[str(batch)] = len(prompts) / (time.perf_counter() - start)
        cpu_throughput[str(batch)] = len(prompts) / (time.process_time() - cpu)
        texts[str(batch)] = [decode(a) for a in answers]
        tokens = [len(a) for a in answers]
    return {
        "import_s": round(loaded - began, 3),
        "p50_ms": statistics.median(latencies),
        "p95_ms": _percentile(latencies, 0.95),
        "cpu_p50_ms": statistics.median(cpu_latencies),
        "cpu_p95_ms": _percentile(cpu_latencies, 0.95),
        "throughput": throughput,
        "cpu_throughput": cpu_throughput,
        "texts": texts,
        "completion_tokens": tokens,
        "peak_rss_mb": peak_rss_mb(),
    }


def _load_by_path(name: str, relative: str) -> Any:
    module_spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def _runtime_engine(spec: dict[str, Any], name: str):
    # By file path: the package __init__ would set up Django; the engine itself needs none of it.
    _load_by_path("inference.runtime.batching", "inference/runtime/batching.py")
    _load_by_path("inference.runtime.speculation", "inference/runtime/speculation.py")
    _load_by_path("inference.runtime.static_cache", "inference/runtime/static_cache.py")
    module = _load_by_path("concordance_engine", "inference/runtime/engine.py")
    engine = module.DecoderEngine(Path(spec["model_dirs"][name]), threads=spec["threads"])
    engine.running_rows = spec["running_rows"]
    assert "torch" not in sys.modules, "the runtime must not import torch"
    budget = spec["memory_budget_mb"] * 1024 * 1024 or None

    def generate(batch: list[list[int]], limit: int, rows: int | None = None) -> list[list[int]]:
        answers = engine.generate_ids(batch, limit, max_rows=rows, memory_budget_bytes=budget)
        return [[t for t in ids if t not in engine.eos_ids] for ids in answers]

    return generate, (lambda text: engine.encode([text])[0], engine.decode)


def _torch_like_engine(engine: str, spec: dict[str, Any]):
    import torch
    from tokenizers import Tokenizer

    torch.set_num_threads(spec["threads"])
    model_dir = Path(spec["model_dir"])
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    generation = json.loads((model_dir / "generation_config.json").read_text())
    eos = generation["eos_token_id"]
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    pad = generation.get("pad_token_id", min(eos_ids))
    if engine == "pytorch":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(spec["torch_dir"]).eval()
    else:
        import onnxruntime as ort
        from optimum.onnxruntime import ORTModelForCausalLM

        options = ort.SessionOptions()
        options.intra_op_num_threads = spec["threads"]
        options.inter_op_num_threads = 1
        model = ORTModelForCausalLM.from_pretrained(
            model_dir, session_options=options, provider="CPUExecutionProvider", use_cache=True
        )

    def generate(batch: list[list[int]], limit: int, rows: int | None = None) -> list[list[int]]:
        width = max(len(p) for p in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prompt in enumerate(batch):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=limit,
                do_sample=False,
                num_beams=1,
                eos_token_id=sorted(eos_ids),
                pad_token_id=pad,
            )
        answers = []
        for row in out[:, width:].tolist():
            answer = []
            for token in row:
                if token in eos_ids:
                    break
                answer.append(token)
            answers.append(answer)
        return answers

    return generate, (
        lambda text: tokenizer.encode(text).ids,
        lambda ids: tokenizer.decode(ids, skip_special_tokens=True).strip(),
    )


if __name__ == "__main__":
    main()
