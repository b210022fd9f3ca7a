"""Benchmark of a re-inference run end to end against the raw model time on the same studies.

Run from the repository root::

    .venv/bin/python bench/reinference.py [--studies 10000] [--workers N] [--seed 7] [--var-dir DIR]

The aim (issue #5): a 10,000-study re-inference run, end to end, within 1.25x the raw model time
with one worker per core. Steps:

1. In its own ``CONCORDANCE_VAR_DIR`` (default ``$CONCORDANCE_VAR_DIR/reinference-<N>``, SQLite and
   the file-system broker; PostgreSQL when ``DATABASE_URL`` is set): migrate, seed N synthetic studies
   whose drafts the shipped model wrote (``seed_demo --drafts model``, so reproduction is judged), and
   register the builtin models. A directory seeded before with the same N and seed is reused.
2. RAW model time: a subprocess with one onnxruntime thread (``INFERENCE_THREADS=1``) runs
   ``inference.runtime.generate`` over exactly the cohort's stored inputs, in cohort order, in batches
   of ``REINFERENCE_CHUNK_SIZE`` (the run's chunks); model load and a warm-up batch are not timed.
3. END TO END: W real Celery worker processes (``--pool solo``, ``INFERENCE_THREADS=1``; default one
   per core) are started and awaited ("ready"), then a run over the whole cohort is created through
   ``reinference_run_create``; the wall time runs from that call until the run is seen completed, so
   it includes freezing the cohort, the broker, each worker's model load, comparison and storage.

Reported: e2e wall / (raw wall / W) (aim <= 1.25), the same against raw CPU time, studies/s,
reproduction rate (must be 100%), result count == cohort with one result per study, p50/p95 latency
from ``run_summary``; as a JSON line and a markdown row. Because this machine may be shared, also the
workers' own generation time (summed over chunks) with e2e / (that / W), the pipeline's overhead
whatever the cores were doing, and the CPU the workers got as a share of W cores over the run.
The workers are stopped on exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("CONCORDANCE_TLS", "0")

from portal.core.workers import start_worker  # noqa: E402  (path set up above)

_workers: list[subprocess.Popen] = []


# --- worker processes -------------------------------------------------------------------------------


def stop_workers() -> None:
    """Terminate every worker this script started (SIGTERM, then SIGKILL after 20 s)."""
    for process in _workers:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 20
    for process in _workers:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    _workers.clear()


def workers_cpu_seconds() -> float:
    """CPU seconds (user + system) the running workers have used so far: did they get their cores?"""
    import psutil

    total = 0.0
    for process in _workers:
        try:
            times = psutil.Process(process.pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _on_signal(signum: int, _frame: Any) -> None:
    stop_workers()
    raise SystemExit(128 + signum)


def start_workers(count: int, env: dict[str, str], log_dir: Path, timeout: float = 180.0) -> float:
    """Start ``count`` solo-pool workers and wait until each logged "ready"; returns the seconds taken."""
    started = time.perf_counter()
    logs = []
    for index in range(count):
        log = log_dir / f"worker-{index}.log"
        log.write_text("")
        logs.append(log)
        with log.open("a") as handle:
            _workers.append(
                start_worker(
                    env=env,
                    cwd=ROOT,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    loglevel="INFO",
                    hostname=f"bench{index}@%h",
                )
            )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process, log in zip(_workers, logs, strict=True):
            if process.poll() is not None:
                raise SystemExit(
                    f"a worker exited at start ({process.returncode}):\n{log.read_text()[-2000:]}"
                )
        if all(" ready." in log.read_text() for log in logs):
            return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"workers not ready after {timeout:.0f} s; see {log_dir}")


# --- the raw model time, in its own process ---------------------------------------------------------


def raw_worker(spec_path: str) -> dict[str, Any]:
    """Generate the cohort's stored inputs in chunk-sized batches with one thread; time the generation."""
    import django

    django.setup()
    from inference import runtime
    from portal.records.models import ModelVersion

    spec = json.loads(Path(spec_path).read_text())
    mv = ModelVersion.objects.get(pk=spec["model_version"])
    inputs, texts = spec["inputs"], spec["texts"]
    runtime.load(mv)
    runtime.generate(mv, "report_draft", inputs[:2])  # warm-up (onnxruntime's arena, first-call paths)
    size = spec["chunk_size"]
    wall, cpu, same, tokens = 0.0, 0.0, 0, 0
    for start in range(0, len(inputs), size):
        batch = inputs[start : start + size]
        began_wall, began_cpu = time.perf_counter(), time.process_time()
        generations = runtime.generate(mv, "report_draft", batch)
        wall += time.perf_counter() - began_wall
        cpu += time.process_time() - began_cpu
        for generation, stored in zip(generations, texts[start : start + size], strict=True):
            same += stored is not None and generation.text == stored
            tokens += generation.completion_tokens
    return {
        "studies": len(inputs),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "same_as_stored": same,
        "judged": sum(t is not None for t in texts),
        "completion_tokens": tokens,
    }


def raw_model_time(env: dict[str, str], spec: dict[str, Any], spec_path: Path) -> dict[str, Any]:
    spec_path.write_text(json.dumps(spec))
    result = subprocess.run(  # this interpreter, this script
        [sys.executable, __file__, "--raw-worker", str(spec_path)],
        cwd=ROOT,
        env={**env, "INFERENCE_THREADS": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"raw model timing failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- set-up -----------------------------------------------------------------------------------------


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # this interpreter, manage.py, fixed argv
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()


def prepare(var_dir: Path, env: dict[str, str], studies: int, seed: int) -> str:
    """Migrate and seed once per directory (a marker records N and seed); returns the seed's message."""
    var_dir.mkdir(parents=True, exist_ok=True)
    marker = var_dir / "bench-seeded.json"
    wanted = {"studies": studies, "seed": seed, "database": env.get("DATABASE_URL", "sqlite")}
    if marker.is_file() and json.loads(marker.read_text()).get("wanted") == wanted:
        return json.loads(marker.read_text())["message"] + " (reused)"
    manage(env, "migrate", "--noinput")
    message = manage(env, "seed_demo", "--studies", str(studies), "--seed", str(seed), "--drafts", "model")
    marker.write_text(json.dumps({"wanted": wanted, "message": message}))
    return message


# --- the parent -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--var-dir", type=Path, help="default: $CONCORDANCE_VAR_DIR/reinference-<studies>")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds to wait for the run")
    parser.add_argument("--raw-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_worker:
        print(json.dumps(raw_worker(args.raw_worker)))
        return
    if args.studies < 1 or args.workers < 1:
        raise SystemExit("--studies and --workers must be positive")

    base = Path(os.environ.get("CONCORDANCE_VAR_DIR") or ROOT / "var")
    var_dir = (args.var_dir or base / f"reinference-{args.studies}").resolve()
    # Everything below, this process included, uses the bench's own directory (database, broker).
    os.environ["CONCORDANCE_VAR_DIR"] = str(var_dir)
    env = {**os.environ, "INFERENCE_THREADS": "1", "OMP_NUM_THREADS": "1"}
    atexit.register(stop_workers)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    began = time.perf_counter()
    seeded = prepare(var_dir, {**env, "INFERENCE_THREADS": str(os.cpu_count() or 1)}, args.studies, args.seed)
    print(f"# {seeded}; set-up {time.perf_counter() - began:.1f} s", file=sys.stderr)

    import django

    django.setup()
    from django.conf import settings

    from audit.log import SYSTEM
    from inference import registry
    from inference.models import ReinferenceResult
    from inference.reinference import runs
    from inference.reinference.cohort import CohortFilter, select_cohort
    from inference.selectors import run_progress, run_summary
    from portal.celery import app
    from portal.records.models import AIOutput

    mv = registry.default_shipped_model(context=SYSTEM)
    if mv is None:
        raise SystemExit("no shipped model under inference/artifacts/")
    chunk_size = int(settings.REINFERENCE_CHUNK_SIZE)
    items = select_cohort(model_version=mv, kind="report_draft", cohort=CohortFilter())
    originals = AIOutput.objects.in_bulk([original for _study, original, _report in items])
    inputs = [originals[original].inputs for _study, original, _report in items]
    # Reproduction is judged only where the original is this version's own draft.
    texts = [
        originals[o].text if originals[o].model_version_id == mv.pk else None for _study, o, _report in items
    ]

    # (1) raw model time
    print(f"# raw model time over {len(items)} studies ...", file=sys.stderr)
    raw = raw_model_time(
        env,
        {"model_version": mv.pk, "inputs": inputs, "texts": texts, "chunk_size": chunk_size},
        var_dir / "bench-raw-spec.json",
    )
    print(f"# raw: {raw}", file=sys.stderr)

    # (2) end to end, with W workers on an empty queue
    app.control.purge()
    load_before = os.getloadavg()
    ready_s = start_workers(args.workers, env, var_dir)
    print(f"# {args.workers} workers ready in {ready_s:.1f} s; creating the run ...", file=sys.stderr)
    started = time.perf_counter()
    run = runs.reinference_run_create(model_version=mv, cohort=CohortFilter(), actor=None, context=SYSTEM)
    created_s = time.perf_counter() - started
    deadline = time.monotonic() + args.timeout
    last_note = 0.0
    while True:
        run.refresh_from_db()
        if not run.is_active:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run.pk} not finished after {args.timeout:.0f} s: {run_progress(run)}")
        if time.monotonic() - last_note > 30:
            last_note = time.monotonic()
            print(f"# progress: {run_progress(run)}", file=sys.stderr)
        time.sleep(0.1)
    e2e_s = time.perf_counter() - started
    load_after = os.getloadavg()
    worker_cpu_s = workers_cpu_seconds()
    stop_workers()

    summary = run_summary(run)
    results = ReinferenceResult.objects.filter(run=run)
    result_count = results.count()
    distinct_studies = results.values("study_id").distinct().count()
    reproduction = summary["reproduction"]
    latency = summary["latency_ms"]["new"]
    figures = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})",
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "broker": settings.CELERY_BROKER_URL.split(":", 1)[0],
        "model": f"{mv.name}:{mv.version}",
        "studies_seeded": args.studies,
        "cohort": len(items),
        "chunk_size": chunk_size,
        "workers": args.workers,
        "raw_wall_s": raw["wall_s"],
        "raw_cpu_s": raw["cpu_s"],
        "raw_same_as_stored": f"{raw['same_as_stored']}/{raw['judged']}",
        "workers_ready_s": round(ready_s, 1),
        "run_create_s": round(created_s, 2),
        "e2e_wall_s": round(e2e_s, 2),
        "ratio_wall": round(e2e_s / (raw["wall_s"] / args.workers), 3),
        "ratio_cpu": round(e2e_s / (raw["cpu_s"] / args.workers), 3),
        "studies_per_s": round(len(items) / e2e_s, 2),
        "raw_studies_per_s_per_core": round(len(items) / raw["wall_s"], 2),
        # The workers' own generation time (chunk batches, summed) and CPU use: on a shared machine
        # they tell a slow pipeline from cores taken by other processes.
        "worker_generation_s": summary["throughput"]["generation_seconds"],
        "ratio_pipeline": round(e2e_s / (summary["throughput"]["generation_seconds"] / args.workers), 3),
        "worker_cpu_s": round(worker_cpu_s, 1),
        "worker_cpu_share": round(worker_cpu_s / (e2e_s + ready_s) / args.workers, 3),
        "status": run.status,
        "done": run.done,
        "failed": run.failed,
        "results": result_count,
        "exactly_once": result_count == distinct_studies == len(items),
        "reproduction": f"{reproduction['reproduced']}/{reproduction['judged']}",
        "reproduction_rate": reproduction["rate"],
        "latency_p50_ms": latency.get("p50"),
        "latency_p95_ms": latency.get("p95"),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
        "command": " ".join([".venv/bin/python bench/reinference.py", *(argv or sys.argv[1:])]),
    }
    print(json.dumps(figures))
    header = [
        "studies", "workers", "raw wall s", "raw CPU s", "e2e wall s", "e2e / (raw wall / W)",
        "e2e / (raw CPU / W)", "e2e / (worker gen / W)", "studies/s", "reproduced", "results == cohort",
        "p50 / p95 ms",
    ]  # fmt: skip
    row = [
        f"{len(items):,}",
        str(args.workers),
        f"{raw['wall_s']:.1f}",
        f"{raw['cpu_s']:.1f}",
        f"{e2e_s:.1f}",
        f"{figures['ratio_wall']:.2f}",
        f"{figures['ratio_cpu']:.2f}",
        f"{figures['ratio_pipeline']:.2f}",
        f"{figures['studies_per_s']:.1f}",
        f"{reproduction['reproduced']}/{reproduction['judged']}",
        "yes" if figures["exactly_once"] else f"NO ({result_count}, {distinct_studies} studies)",
        f"{latency.get('p50')} / {latency.get('p95')}",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print("| " + " | ".join(row) + " |")
    if (
        run.status != "completed"
        or not figures["exactly_once"]
        or reproduction["judged"] != reproduction["reproduced"]
    ):
        raise SystemExit("the run did not complete cleanly (see the figures above)")


if __name__ == "__main__":
    main()
