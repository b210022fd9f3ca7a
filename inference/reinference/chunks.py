"""Processing one re-inference chunk (the body of the chunk task).

:func:`reinference_chunk_process` claims its chunk with a lease, generates the whole chunk in one
batch with the worker's cached onnxruntime session, compares every text and stores the results, the
progress counters and the chunk's ``done`` state in ONE transaction: a worker that dies before that
commit leaves nothing behind, and a second delivery of the same chunk finds it done.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from inference import runtime
from inference.compare import compare
from inference.models import (
    ChunkStatus,
    ReinferenceChunk,
    ReinferenceResult,
    ReinferenceRun,
    ResultStatus,
    RunStatus,
)
from inference.prompts import PromptError, build_prompt
from inference.registry import ArtifactIntegrityError, verify_artifacts
from inference.reinference.lease import chunk_heartbeat
from inference.reinference.runs import (
    MAX_ERROR_CHARS,
    complete_if_finished,
    lease_seconds,
    max_attempts,
    reinference_run_fail,
    worker_identity,
)
from inference.reinference.summary import categories_of
from portal.core.signals import stored_comparisons_wanted
from portal.records.models import AIOutput, ModelVersion, SignedReport, sha256_text


@dataclasses.dataclass
class _Outcome:
    """What the worker computed for one study, before it is stored."""

    study_id: int
    original: AIOutput
    reference: SignedReport
    text: str = ""
    error: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None


def _claim(chunk_id: int, owner: str) -> bool:
    """Compare-and-set: pending, expired or our own lease becomes our lease. True when we got it."""
    now = timezone.now()
    claimable = Q(status=ChunkStatus.PENDING) | Q(status=ChunkStatus.RUNNING, lease_expires_at__lt=now)
    claimable |= Q(status=ChunkStatus.RUNNING, lease_owner=owner)
    with transaction.atomic():
        claimed = (
            ReinferenceChunk.objects.filter(pk=chunk_id)
            .filter(claimable)
            .update(
                status=ChunkStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds()),
                attempts=F("attempts") + 1,
                started_at=now,
            )
        )
        if claimed:
            chunk = ReinferenceChunk.objects.only("run_id").get(pk=chunk_id)
            ReinferenceRun.objects.filter(pk=chunk.run_id, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, started_at=now
            )
    return bool(claimed)


def _reraise_if_transient(exc: BaseException) -> None:
    """Time limits and database trouble are the task's to retry, never a study's failure."""
    if isinstance(exc, SoftTimeLimitExceeded | DatabaseError):
        raise exc


def _generate(mv: ModelVersion, kind: str, outcomes: list[_Outcome]) -> float:
    """Generate every outcome still without an error, in one batch; returns the batch's wall time (ms).

    A study whose inputs cannot become a prompt fails alone. If the batch raises for another reason,
    each study is retried alone so one bad input cannot fail its neighbours. ModelNotRunnable and
    ArtifactIntegrityError propagate: they fail the whole run.
    """
    todo: list[_Outcome] = []
    for outcome in outcomes:
        try:
            build_prompt(kind, outcome.original.inputs)
            todo.append(outcome)
        except PromptError as exc:
            outcome.error = f"prompt: {exc}"[:MAX_ERROR_CHARS]
    if not todo:
        return 0.0
    started = time.perf_counter()
    try:
        generations = runtime.generate(mv, kind, [o.original.inputs for o in todo])
        pairs = list(zip(todo, generations, strict=True))
    except (runtime.ModelNotRunnable, ArtifactIntegrityError):
        raise
    except Exception as exc:  # isolate the study that breaks the batch
        _reraise_if_transient(exc)
        pairs = []
        for outcome in todo:
            try:
                pairs.append((outcome, runtime.generate(mv, kind, [outcome.original.inputs])[0]))
            except (runtime.ModelNotRunnable, ArtifactIntegrityError):
                raise
            except Exception as single:  # recorded as this study's failure
                _reraise_if_transient(single)
                outcome.error = f"{type(single).__name__}: {single}"[:MAX_ERROR_CHARS]
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    for outcome, generation in pairs:
        if not generation.text:
            outcome.error = "empty: the model produced no text"
            continue
        outcome.text = generation.text
        outcome.prompt_tokens = generation.prompt_tokens
        outcome.completion_tokens = generation.completion_tokens
        outcome.latency_ms = max(0.0, float(generation.latency_ms))
    return elapsed_ms


def _original_figures(outcomes: list[_Outcome]) -> dict[int, tuple[str, int, int, dict[str, dict[str, int]]]]:
    """Per study, the original output's comparison with the same report: stored row, else the engine.

    The stored rows belong to the review app (above this one): asked for by a signal, not imported.
    """
    pairs = {(o.original.pk, o.reference.pk): o.study_id for o in outcomes}
    figures: dict[int, tuple[str, int, int, dict[str, dict[str, int]]]] = {}
    for _receiver, answer in stored_comparisons_wanted.send(sender=__name__, pairs=set(pairs)):
        for pair, (radpeer, significant, minor, discrepancies) in answer.items():
            if pair in pairs:
                figures[pairs[pair]] = (radpeer, significant, minor, categories_of(discrepancies))
    for outcome in outcomes:
        if outcome.study_id not in figures:
            result = compare(outcome.original.text, outcome.reference.text)
            listed = [d.to_dict() for d in result.discrepancies]
            significant = sum(1 for d in listed if d["significance"] == "significant")
            figures[outcome.study_id] = (
                result.radpeer,
                significant,
                len(listed) - significant,
                categories_of(listed),
            )
    return figures


def _result_row(
    run: ReinferenceRun, chunk: ReinferenceChunk, outcome: _Outcome, original: tuple
) -> ReinferenceResult:
    """The result row of one study: text, reproduction, and both comparisons with the signed report."""
    o_radpeer, o_significant, o_minor, o_categories = original
    row = ReinferenceResult(
        run=run,
        chunk=chunk,
        study_id=outcome.study_id,
        original=outcome.original,
        reference=outcome.reference,
        original_radpeer=o_radpeer,
        original_significant_count=o_significant,
        original_minor_count=o_minor,
        original_categories=o_categories,
    )
    if outcome.error or not outcome.text:
        row.status = ResultStatus.FAILED
        row.error = outcome.error or "not generated"
        return row
    result = compare(outcome.text, outcome.reference.text)
    listed = [d.to_dict() for d in result.discrepancies]
    significant = sum(1 for d in listed if d["significance"] == "significant")
    row.status = ResultStatus.OK
    row.text = outcome.text
    row.text_sha256 = sha256_text(outcome.text)
    row.prompt_tokens = outcome.prompt_tokens
    row.completion_tokens = outcome.completion_tokens
    row.latency_ms = outcome.latency_ms
    # Byte equality says "this version reproduced its own draft"; across versions it says nothing.
    row.reproduced = (
        (outcome.text == outcome.original.text)
        if run.model_version_id == outcome.original.model_version_id
        else None
    )
    row.radpeer_suggested = result.radpeer
    row.significant_count = significant
    row.minor_count = len(listed) - significant
    row.categories = categories_of(listed)
    row.discrepancies = listed
    return row


def _insert_results(rows: list[ReinferenceResult]) -> tuple[int, int]:
    """Insert each row once; a row already stored for (run, study) is kept. Returns (ok, failed) inserted."""
    try:
        with transaction.atomic():
            ReinferenceResult.objects.bulk_create(rows)
        inserted = rows
    except IntegrityError:
        # Some were stored before (a redelivered chunk): insert one by one, keeping the existing rows.
        inserted = []
        for row in rows:
            row.pk = None
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
                inserted.append(row)
            except IntegrityError:
                continue
    ok = sum(1 for row in inserted if row.status == ResultStatus.OK)
    return ok, len(inserted) - ok


def _store(chunk: ReinferenceChunk, outcomes: list[_Outcome], generation_ms: float | None) -> str:
    """Store a chunk's results, advance the run's counters and close the chunk, in one transaction.

    The comparisons run before the transaction opens, so the write lock is held only for the inserts.
    """
    run = chunk.run
    figures = _original_figures(outcomes)
    rows = [_result_row(run, chunk, o, figures[o.study_id]) for o in outcomes]
    now = timezone.now()
    with transaction.atomic():
        # Whoever finishes first wins: a chunk the reaper handed back (pending) or still leased is ours to
        # close; one already done (by a faster duplicate) or skipped (run failed) is not.
        closed = ReinferenceChunk.objects.filter(
            pk=chunk.pk, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
        ).update(
            status=ChunkStatus.DONE,
            lease_owner="",
            lease_expires_at=None,
            finished_at=now,
            generation_ms=generation_ms,
        )
        if not closed:
            return "superseded"
        ok, failed = _insert_results(rows)
        # The counters move with the rows they count: locked by this UPDATE until commit.
        ReinferenceRun.objects.filter(pk=run.pk).update(done=F("done") + ok, failed=F("failed") + failed)
        complete_if_finished(run.pk, now)
    return "done"


def _load_outcomes(chunk: ReinferenceChunk) -> list[_Outcome]:
    """The chunk's frozen studies with their original outputs and signed reports (two queries)."""
    originals = AIOutput.objects.in_bulk([item[1] for item in chunk.items])
    references = SignedReport.objects.in_bulk([item[2] for item in chunk.items])
    outcomes = []
    for study_id, original_id, reference_id in chunk.items:
        original, reference = originals.get(original_id), references.get(reference_id)
        if original is None or reference is None:
            # Purged since the run was created (retention); nothing left to compare.
            continue
        outcomes.append(_Outcome(study_id=study_id, original=original, reference=reference))
    return outcomes


def reinference_chunk_process(*, chunk_id: int, owner: str | None = None) -> str:
    """Claim, generate, compare and store one chunk. Idempotent; returns what happened.

    ``"done"``: stored. ``"busy"``: another worker holds a live lease (or the chunk is finished).
    ``"skipped"``: the run is no longer active. ``"failed"``: the model cannot run, the run failed.
    ``"superseded"``: a duplicate delivery finished first; nothing of ours was stored.
    """
    owner = owner or worker_identity()
    chunk = ReinferenceChunk.objects.select_related("run__model_version").filter(pk=chunk_id).first()
    if chunk is None:
        return "missing"
    run = chunk.run
    if not run.is_active:
        ReinferenceChunk.objects.filter(pk=chunk_id, status=ChunkStatus.PENDING).update(
            status=ChunkStatus.SKIPPED
        )
        return "skipped"
    if not _claim(chunk_id, owner):
        return "busy"
    chunk.refresh_from_db(fields=["status", "lease_owner", "lease_expires_at", "attempts", "started_at"])
    outcomes = _load_outcomes(chunk)
    if chunk.attempts > max_attempts():
        # Workers died on this chunk again and again: record its studies as failed, do not loop forever.
        for outcome in outcomes:
            outcome.error = f"abandoned after {chunk.attempts - 1} lost attempts"
        return _store(chunk, outcomes, None)
    mv = run.model_version
    # Renewed while this process lives, however long the batch takes; a dead process's lease runs out.
    with chunk_heartbeat(chunk_id=chunk_id, owner=owner, lease_seconds=lease_seconds()):
        try:
            verify_artifacts(mv)  # cheap (a few MB hashed per chunk); a model swapped mid-run must not run
            generation_ms = _generate(mv, run.kind, outcomes)
        except (runtime.ModelNotRunnable, ArtifactIntegrityError) as exc:
            reinference_run_fail(run_id=run.pk, error=f"{type(exc).__name__}: {exc}")
            return "failed"
        return _store(chunk, outcomes, generation_ms)
