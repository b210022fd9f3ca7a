"""The run workflow in process: create, chunk processing, idempotency, leases, reaper, cancel, failure."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from django.db.models import Count
from django.utils import timezone

from audit.log import SYSTEM
from audit.models import AuditEvent
from inference import runtime, selectors, tasks
from inference.models import ChunkStatus, ReinferenceChunk, ReinferenceResult, ReinferenceRun, RunStatus
from inference.registry import model_version_register_directory
from inference.reinference import chunks, reaper, runs
from inference.reinference.cohort import CohortFilter
from portal.core.errors import InvalidRecord, RecordConflict
from portal.records.models import AIOutput
from portal.review.services import comparison_create
from tests.model_fixtures import build_tiny_model

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_sessions():
    runtime.clear_cache()
    yield
    runtime.clear_cache()


def _create(model_version, *, chunk_size: int = 2, **filters) -> ReinferenceRun:
    return runs.reinference_run_create(
        model_version=model_version,
        cohort=CohortFilter(**filters),
        chunk_size=chunk_size,
        actor=None,
        context=SYSTEM,
    )


def _process_all(run: ReinferenceRun) -> list[str]:
    return [
        chunks.reinference_chunk_process(chunk_id=pk)
        for pk in run.chunks.order_by("index").values_list("pk", flat=True)
    ]


def test_a_run_freezes_its_cohort_into_chunks_and_enqueues_them_after_commit(
    make_cohort, tiny_model_version, django_capture_on_commit_callbacks
):
    studies = make_cohort(5, tiny_model_version)

    with django_capture_on_commit_callbacks() as callbacks:
        run = _create(tiny_model_version, chunk_size=2)

    assert len(callbacks) == 1  # one on-commit hook sends every chunk
    assert (run.status, run.total, run.done, run.failed) == (RunStatus.QUEUED, 5, 0, 0)
    chunks = list(run.chunks.order_by("index"))
    assert [len(c.items) for c in chunks] == [2, 2, 1]
    assert [sid for c in chunks for sid in c.study_ids] == [s.pk for s in studies]
    event = AuditEvent.objects.get(action="reinference_run.create")
    assert event.object_id == str(run.pk) and event.details["total"] == 5 and event.details["chunks"] == 3

    make_cohort(2, tiny_model_version)  # arrives later: the frozen cohort does not grow
    assert sum(len(c.items) for c in run.chunks.all()) == 5


def test_the_same_version_reproduces_its_own_drafts_and_both_sides_are_compared(
    make_cohort, tiny_model_version
):
    make_cohort(5, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)

    assert _process_all(run) == ["done", "done", "done"]

    run.refresh_from_db()
    results = list(ReinferenceResult.objects.filter(run=run).select_related("original"))
    assert run.status == RunStatus.COMPLETED and run.finished_at is not None
    assert run.done + run.failed == run.total == len(results) == 5
    for result in results:
        if result.status == "ok":
            assert result.reproduced is True
            assert result.text == result.original.text
            assert result.radpeer_suggested and result.original_radpeer
            assert result.completion_tokens and result.latency_ms >= 0
    assert AuditEvent.objects.filter(action="reinference_run.complete", object_id=str(run.pk)).count() == 1
    summary = selectors.run_summary(run)
    assert summary["reproduction"]["rate"] == 1.0
    assert summary["studies_compared"] == run.done
    assert sum(summary["new"]["radpeer_suggested"].values()) == run.done
    assert summary["latency_ms"]["new"]["p50"] is not None
    assert summary["throughput"]["tokens_per_second"] > 0
    # Same texts, same references: the new side is judged exactly as the original.
    assert (
        summary["new"]["significant_per_study_by_category"]
        == summary["original"]["significant_per_study_by_category"]
    )


def test_another_version_is_compared_but_not_judged_on_reproduction(
    make_cohort, other_version, tiny_model_version
):
    make_cohort(3, other_version)
    run = _create(tiny_model_version, chunk_size=3)
    _process_all(run)

    results = ReinferenceResult.objects.filter(run=run)
    assert results.count() == 3
    assert set(results.values_list("reproduced", flat=True)) == {None}
    run.refresh_from_db()
    summary = selectors.run_summary(run)
    assert summary["reproduction"] == {"judged": 0, "reproduced": 0, "rate": None}
    assert summary["original"]["studies"] == summary["new"]["studies"] == run.done


def test_the_original_side_reuses_the_review_apps_stored_comparison(
    make_cohort, other_version, tiny_model_version
):
    [study] = make_cohort(1, other_version)
    original = AIOutput.objects.get(study=study)
    stored, _ = comparison_create(candidate=original, reference=study.signed_reports.get())
    run = _create(tiny_model_version)
    _process_all(run)

    result = ReinferenceResult.objects.get(run=run)
    assert result.original_radpeer == stored.radpeer_suggested
    assert result.original_significant_count == stored.significant_count


def test_a_second_delivery_of_a_chunk_changes_nothing(make_cohort, tiny_model_version):
    make_cohort(4, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    chunk = run.chunks.order_by("index").first()

    assert tasks.reinference_chunk(chunk.pk) == "done"
    assert tasks.reinference_chunk(chunk.pk) == "busy"

    run.refresh_from_db()
    assert ReinferenceResult.objects.filter(run=run).count() == 2
    assert run.done + run.failed == 2
    assert run.status == RunStatus.RUNNING


def test_a_result_already_stored_is_kept_and_not_counted_twice(make_cohort, tiny_model_version):
    studies = make_cohort(2, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    chunk = run.chunks.get()
    first = chunk.items[0]
    kept = ReinferenceResult.objects.create(
        run=run,
        chunk=chunk,
        study_id=first[0],
        original_id=first[1],
        reference_id=first[2],
        status="failed",
        error="stored by an earlier delivery",
    )

    assert chunks.reinference_chunk_process(chunk_id=chunk.pk) == "done"

    assert ReinferenceResult.objects.filter(run=run, study=studies[0]).get().pk == kept.pk
    assert ReinferenceResult.objects.filter(run=run).count() == 2
    run.refresh_from_db()
    assert run.done + run.failed == 1  # only the row this delivery inserted


def test_a_live_lease_keeps_other_workers_out_and_an_expired_one_lets_them_in(
    make_cohort, tiny_model_version
):
    make_cohort(2, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    chunk = run.chunks.get()
    ReinferenceChunk.objects.filter(pk=chunk.pk).update(
        status=ChunkStatus.RUNNING,
        lease_owner="elsewhere:1:1",
        lease_expires_at=timezone.now() + dt.timedelta(minutes=5),
    )

    assert chunks.reinference_chunk_process(chunk_id=chunk.pk, owner="here:2:2") == "busy"
    assert not ReinferenceResult.objects.exists()

    ReinferenceChunk.objects.filter(pk=chunk.pk).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert chunks.reinference_chunk_process(chunk_id=chunk.pk, owner="here:2:2") == "done"
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.DONE and chunk.attempts == 1
    assert ReinferenceResult.objects.filter(run=run).count() == 2


def test_the_reaper_hands_back_expired_leases_and_resends_stalled_chunks(
    make_cohort, tiny_model_version, django_capture_on_commit_callbacks
):
    make_cohort(6, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    dead, live, waiting = run.chunks.order_by("index")
    now = timezone.now()
    ReinferenceChunk.objects.filter(pk=dead.pk).update(
        status=ChunkStatus.RUNNING,
        lease_owner="dead:1:1",
        lease_expires_at=now - dt.timedelta(seconds=5),
        started_at=now,
    )
    ReinferenceChunk.objects.filter(pk=live.pk).update(
        status=ChunkStatus.RUNNING,
        lease_owner="live:1:1",
        lease_expires_at=now + dt.timedelta(minutes=5),
        started_at=now,
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        reaped = reaper.reinference_reap(redispatch_after=0)

    assert (reaped.expired, reaped.redispatched) == (1, 0)  # a live lease means the run is not stalled
    assert len(callbacks) == 1
    dead.refresh_from_db()
    assert (dead.status, dead.lease_owner) == (ChunkStatus.PENDING, "")

    ReinferenceChunk.objects.filter(pk=live.pk).update(
        status=ChunkStatus.DONE, lease_owner="", lease_expires_at=None
    )
    ReinferenceChunk.objects.filter(run=run).update(started_at=now - dt.timedelta(hours=1))
    reaped = reaper.reinference_reap(redispatch_after=0)
    assert reaped.redispatched == 2  # the handed-back chunk and the one whose message was lost
    assert {c.status for c in (dead, waiting)} == {ChunkStatus.PENDING}


def test_a_chunk_lost_with_its_worker_too_often_records_its_studies_as_failed(
    make_cohort, tiny_model_version
):
    make_cohort(2, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    chunk = run.chunks.get()
    ReinferenceChunk.objects.filter(pk=chunk.pk).update(attempts=3)

    assert chunks.reinference_chunk_process(chunk_id=chunk.pk) == "done"

    run.refresh_from_db()
    assert (run.status, run.done, run.failed) == (RunStatus.COMPLETED, 0, 2)
    assert set(ReinferenceResult.objects.values_list("error", flat=True)) == {
        "abandoned after 3 lost attempts"
    }


def test_a_study_whose_inputs_cannot_become_a_prompt_fails_alone(
    make_cohort, tiny_model_version, other_version
):
    make_cohort(2, other_version)
    make_cohort(1, other_version, inputs_override={"findings": "not a list"})
    run = _create(tiny_model_version, chunk_size=3)

    assert _process_all(run) == ["done"]

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.done + run.failed == 3
    failed = ReinferenceResult.objects.get(run=run, error__startswith="prompt:")
    assert failed.status == "failed" and failed.text == "" and "findings must be a list" in failed.error
    # The other two were generated (a random tiny model may answer nothing: "empty", not "prompt").
    assert selectors.run_summary(run)["failure_reasons"].get("prompt") == 1


def test_cancelling_skips_pending_chunks_and_is_audited(make_cohort, tiny_model_version, personas):
    make_cohort(6, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    first, *rest = run.chunks.order_by("index")
    chunks.reinference_chunk_process(chunk_id=first.pk)

    run = runs.reinference_run_cancel(run=run, actor=personas["dana"], context=SYSTEM)

    assert run.status == RunStatus.CANCELLED and run.finished_at is not None
    assert [chunks.reinference_chunk_process(chunk_id=c.pk) for c in rest] == ["skipped", "skipped"]
    assert ReinferenceResult.objects.filter(run=run).count() == 2
    assert set(run.chunks.values_list("status", flat=True)) == {ChunkStatus.DONE, ChunkStatus.SKIPPED}
    event = AuditEvent.objects.get(action="reinference_run.cancel")
    assert event.actor_username == "dana" and event.details["chunks_skipped"] == 2
    with pytest.raises(RecordConflict):
        runs.reinference_run_cancel(run=run, actor=personas["dana"], context=SYSTEM)
    assert not AuditEvent.objects.filter(action="reinference_run.complete").exists()


def test_a_running_chunk_finishes_its_batch_after_a_cancel(make_cohort, tiny_model_version, personas):
    make_cohort(2, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    chunk = run.chunks.get()
    ReinferenceChunk.objects.filter(pk=chunk.pk).update(
        status=ChunkStatus.RUNNING,
        lease_owner="me:1:1",
        lease_expires_at=timezone.now() + dt.timedelta(minutes=1),
    )
    runs.reinference_run_cancel(run=run, actor=personas["dana"], context=SYSTEM)

    # The worker that held it when the cancel came stores what it generated (the boundary is the chunk).
    outcomes = chunks._load_outcomes(chunk)
    chunks._generate(tiny_model_version, "report_draft", outcomes)
    assert chunks._store(chunk, outcomes, 1.0) == "done"
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.done + run.failed == 2


@pytest.fixture
def corruptible_version(tmp_path):
    """A registered copy of the tiny model whose files a test may damage."""
    directory = tmp_path / "copy"
    shutil.copytree(build_tiny_model().artifact_dir, directory)
    mv = model_version_register_directory(
        directory=directory, name="tiny-copy", version="1", actor=None, context=SYSTEM
    )
    return mv, directory


def test_a_model_corrupted_after_creation_fails_the_run_cleanly(
    make_cohort, corruptible_version, other_version
):
    mv, directory = corruptible_version
    make_cohort(4, other_version)
    run = _create(mv, chunk_size=2)
    with (directory / "model.onnx").open("ab") as handle:
        handle.write(b"tampered")

    assert _process_all(run) == ["failed", "skipped"]

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "ArtifactIntegrityError" in run.error
    assert not ReinferenceResult.objects.exists()
    assert set(run.chunks.values_list("status", flat=True)) == {ChunkStatus.SKIPPED}
    assert AuditEvent.objects.filter(action="reinference_run.fail", object_id=str(run.pk)).count() == 1
    assert AuditEvent.objects.filter(action="model_version.integrity_failure").exists()


def test_a_corrupted_model_is_refused_at_creation(make_cohort, corruptible_version, other_version):
    mv, directory = corruptible_version
    make_cohort(2, other_version)
    (directory / "tokenizer.json").write_text("{}", encoding="utf-8")

    with pytest.raises(InvalidRecord, match="integrity"):
        _create(mv)
    assert not ReinferenceRun.objects.exists()


def test_bad_requests_write_nothing(make_cohort, tiny_model_version, other_version):
    make_cohort(2, other_version, specialty="chest")
    with pytest.raises(InvalidRecord, match="No model version has this name and version"):
        _create("nope:1")
    with pytest.raises(InvalidRecord, match="NAME:VERSION"):
        _create("no version")
    with pytest.raises(InvalidRecord, match="runnable artifacts"):
        _create(other_version)
    with pytest.raises(InvalidRecord, match="cohort is empty"):
        _create(tiny_model_version, specialty="neuro")
    with pytest.raises(InvalidRecord, match="unknown radiologist"):
        _create(tiny_model_version, radiologist="mallory")
    with pytest.raises(InvalidRecord, match="chunk_size"):
        _create(tiny_model_version, chunk_size=5000)
    tiny_model_version.kinds = ["patient_letter"]
    tiny_model_version.save()
    with pytest.raises(InvalidRecord, match="does not produce"):
        _create(tiny_model_version)
    assert not ReinferenceRun.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="reinference_run").exists()


def test_a_run_is_found_by_name_and_version_or_id(make_cohort, tiny_model_version):
    make_cohort(1, tiny_model_version)
    by_name = _create(f"{tiny_model_version.name}:{tiny_model_version.version}")
    by_id = _create(str(tiny_model_version.pk))
    assert by_name.model_version_id == by_id.model_version_id == tiny_model_version.pk


def test_progress_reports_rate_and_eta(make_cohort, tiny_model_version):
    make_cohort(4, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    chunks.reinference_chunk_process(chunk_id=run.chunks.order_by("index").first().pk)
    run.refresh_from_db()
    later = run.started_at + dt.timedelta(seconds=10)

    progress = selectors.run_progress(run, now=later)

    assert progress["done"] + progress["failed"] == 2 and progress["total"] == 4
    assert progress["rate_per_second"] == 0.2 and progress["eta_seconds"] == 10.0
    assert selectors.chunk_counts(run) == {"pending": 1, "running": 0, "done": 1, "skipped": 0}


def test_results_are_unique_per_run_and_study_in_the_database(make_cohort, tiny_model_version):
    make_cohort(2, tiny_model_version)
    run = _create(tiny_model_version, chunk_size=2)
    _process_all(run)
    dupes = ReinferenceResult.objects.values("run", "study").annotate(n=Count("pk")).filter(n__gt=1)
    assert not dupes.exists()
