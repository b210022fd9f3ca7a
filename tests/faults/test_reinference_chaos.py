"""Two workers on the same queue, SIGKILLed at random through a re-inference run.

The run must still complete with every study's result exactly once, its summary must equal that of
a clean run of the same model over the same cohort (greedy decoding is deterministic), and the audit
log must stay gapless and verify. Beat runs beside the workers with a short reaper period, as in
production (only faster), so leases of killed workers are handed on by the real reaper task.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.faults.conftest import ROOT, wait_until
from tests.model_fixtures import TINY_NAME, TINY_VERSION, build_tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

STUDIES = 24
CHAOS_SECONDS = 30
# The run id and time-dependent figures differ between any two runs; everything else must be equal.
TIMING = re.compile(
    r"^run$|latency|throughput|per_second|_ms$|seconds|generation|started|finished|created|duration"
)


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if not TIMING.search(k)}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _start_run(stack) -> int:
    out = stack.shell(
        "from django.core.management import call_command; "
        f"call_command('reinfer', '--model', '{TINY_NAME}:{TINY_VERSION}', '--chunk-size', '2')"
    )
    return int(re.search(r"run (\d+):", out).group(1))


def _status(stack, run_id: int) -> str:
    return stack.scalar("SELECT status FROM inference_reinferencerun WHERE id = %s", [run_id])


def _summary(stack, run_id: int) -> dict:
    out = stack.shell(
        "import json; from inference import selectors; from inference.models import ReinferenceRun; "
        f"print(json.dumps(selectors.run_summary(ReinferenceRun.objects.get(pk={run_id})), sort_keys=True))"
    )
    return json.loads(out.strip().splitlines()[-1])


def _start_beat(stack) -> subprocess.Popen:
    env = {**stack.env, "REINFERENCE_REAP_SECONDS": "2"}
    beat = subprocess.Popen(  # fixed argv
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            str(stack.var_dir / "celerybeat-schedule"),
        ],
        cwd=ROOT,
        env=env,
    )
    stack.processes.append(beat)
    return beat


def test_workers_killed_at_random_change_nothing_in_the_run_or_the_audit_log(stack):
    stack.start_web()
    for n in range(STUDIES):
        assert stack.post_pair(n, prefix="R") == [201, 201, 201]
    files = build_tiny_model()
    stack.shell(
        "from django.core.management import call_command; "
        f"call_command('register_model', '{files.artifact_dir}', '--specialty', 'all')"
    )
    _start_beat(stack)

    chaotic = _start_run(stack)
    workers = [stack.start_worker(), stack.start_worker()]
    rng = random.Random(8)  # chaos, not cryptography
    kills = 0
    started = time.monotonic()
    while time.monotonic() - started < CHAOS_SECONDS and _status(stack, chaotic) != "completed":
        time.sleep(rng.uniform(0.5, 3.0))
        victim = rng.randrange(len(workers))
        os.kill(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait(timeout=20)
        kills += 1
        workers[victim] = stack.start_worker()
    assert kills >= 3, "too few kills to prove anything"
    assert wait_until(lambda: _status(stack, chaotic) == "completed", timeout=300), _status(stack, chaotic)

    clean = _start_run(stack)  # same model, same cohort, nobody killed
    assert wait_until(lambda: _status(stack, clean) == "completed", timeout=300), _status(stack, clean)

    for run_id in (chaotic, clean):
        per_study = stack.query(
            "SELECT study_id, count(*) FROM inference_reinferenceresult WHERE run_id = %s GROUP BY study_id",
            [run_id],
        )
        assert len(per_study) == STUDIES
        assert {count for _, count in per_study} == {1}
    assert _without_timing(_summary(stack, chaotic)) == _without_timing(_summary(stack, clean))

    events, first, last = stack.query("SELECT count(*), min(seq), max(seq) FROM audit_auditevent")[0]
    assert (first, last) == (0, events - 1), "the audit log has a gap"
    assert "audit log intact" in stack.verify_audit()
    print(f"{kills} worker kills during the run")  # for the report
