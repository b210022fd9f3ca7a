"""``manage.py reinfer`` without a worker: it creates the run or says why not; the reaper is scheduled."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from inference import tasks
from inference.models import ReinferenceRun

pytestmark = pytest.mark.django_db


def test_reinfer_creates_a_run_by_name_and_version(make_cohort, tiny_model_version):
    make_cohort(3, tiny_model_version)
    out = io.StringIO()

    call_command(
        "reinfer",
        "--model",
        f"{tiny_model_version.name}:{tiny_model_version.version}",
        "--sample",
        "2",
        "--seed",
        "5",
        "--chunk-size",
        "1",
        stdout=out,
    )

    run = ReinferenceRun.objects.get()
    assert (run.total, run.chunks.count(), run.cohort_filter) == (2, 2, {"sample": 2, "seed": 5})
    assert f"run {run.pk}: 2 studies in 2 chunks" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "nope:1"], "No model version has this name and version"),
        (["--model", "@MODEL", "--specialty", "neuro"], "cohort is empty"),
        (["--model", "@MODEL", "--from", "2026-13-01"], "YYYY-MM-DD"),
        (["--model", "@MODEL", "--from", "2026-02-01", "--to", "2026-01-01"], "date_from"),
        (["--model", "@MODEL", "--sample", "0"], "sample"),
        (["--model", "@MODEL", "--modality", "C T"], "modality"),
    ],
)
def test_reinfer_refuses_bad_arguments(argv, message, make_cohort, tiny_model_version):
    make_cohort(1, tiny_model_version, specialty="chest")
    argv = [f"{tiny_model_version.name}:{tiny_model_version.version}" if a == "@MODEL" else a for a in argv]
    with pytest.raises(CommandError, match=message):
        call_command("reinfer", *argv, stdout=io.StringIO())
    assert not ReinferenceRun.objects.exists()


def test_the_reaper_runs_under_beat_often_enough_to_hand_a_dead_worker_s_chunk_on_within_a_minute():
    entry = settings.CELERY_BEAT_SCHEDULE["reinference-reap"]
    assert entry["task"] == tasks.reap_reinference.name
    assert entry["schedule"] + settings.REINFERENCE_LEASE_SECONDS <= 60


def test_the_reaper_task_runs_with_nothing_to_do():
    assert tasks.reap_reinference() == 0
