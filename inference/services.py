"""Re-inference workflows: create, process, reap, cancel and fail runs.

The life of a run: :func:`reinference_run_create` freezes the cohort into chunks and, after commit,
sends one Celery task per chunk. :func:`reinference_chunk_process` (the task's body) claims its chunk
with a lease, generates the whole chunk in one batch with the worker's cached onnxruntime session,
compares every text and stores the results, the progress counters and the chunk's ``done`` state in
ONE transaction: a worker that dies before that commit leaves nothing behind, and a second delivery of
the same chunk finds it done. :func:`reinference_reap` (Celery beat, every minute, and on demand in
``reinfer --wait``) hands chunks whose lease expired back to the queue, because the broker-less
transport delivers at most once and a killed worker's message is gone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit import log as audit
from inference import runtime
from inference.compare import compare
from inference.models import (
    ACTIVE_RUN_STATUSES,
    ChunkStatus,
    ReinferenceChunk,
    ReinferenceResult,
    ReinferenceRun,
    ResultStatus,
    RunStatus,
)
from inference.prompts import PromptError, build_prompt
from inference.registry import ArtifactIntegrityError, verify_artifacts
from inference.reinference.cohort import CohortFilter, select_cohort, split
from inference.reinference.lease import chunk_heartbeat
from inference.reinference.summary import categories_of
from inference.selectors import model_version_by_reference
from portal.core.enqueue import enqueue_on_commit
from portal.core.errors import InvalidRecord, RecordConflict
from portal.core.signals import stored_comparisons_wanted
from portal.records.models import AIOutput, AIOutputKind, ModelVersion, SignedReport, sha256_text

logger = logging.getLogger(__name__)

#: The chunk task, by name: services do not import tasks (tasks import services).
CHUNK_TASK = "inference.tasks.reinference_chunk"
MAX_ERROR_CHARS = 512


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def chunk_size_default() -> int:
    """Studies per chunk (one task, one generation batch)."""
    return _setting("REINFERENCE_CHUNK_SIZE", 32)


def lease_seconds() -> int:
    """How long a claimed chunk stays its worker's without a renewal (its heartbeat renews it)."""
    return _setting("REINFERENCE_LEASE_SECONDS", 30)


def worker_identity() -> str:
    """Who holds a lease: host, process and thread (a retry in the same thread may re-claim its chunk)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:255]


def _dispatch(chunk_ids: Sequence[int]) -> None:
    """After commit, send one task per chunk. A broker failure is logged; the reaper re-sends later."""
    enqueue_on_commit(CHUNK_TASK, chunk_ids, catch_up="the reaper")


# --- Creating and cancelling runs ------------------------------------------------------------------


def _runnable_version(model_version: ModelVersion | str | int, kind: str) -> ModelVersion:
    """Resolve and check the version: runnable, serving ``kind``, artifacts intact (else InvalidRecord)."""
    mv = (
        model_version
        if isinstance(model_version, ModelVersion)
        else model_version_by_reference(model_version)
    )
    if kind not in AIOutputKind.values:
        raise InvalidRecord(f"kind must be one of {', '.join(AIOutputKind.values)}", field="kind")
    if not mv.is_runnable:
        raise InvalidRecord(
            f"model {mv.name}:{mv.version} has no runnable artifacts here (it ran elsewhere)", field="model"
        )
    if mv.kinds and kind not in mv.kinds:
        raise InvalidRecord(f"model {mv.name}:{mv.version} does not produce {kind}", field="kind")
    try:
        # Outside any transaction: the registry commits its integrity-failure audit event itself.
        verify_artifacts(mv)
    except ArtifactIntegrityError as exc:
        raise InvalidRecord(
            f"model {mv.name}:{mv.version} failed its integrity check: {exc}", field="model"
        ) from exc
    return mv


def reinference_run_create(
    *,
    model_version: ModelVersion | str | int,
    cohort: CohortFilter,
    kind: str = AIOutputKind.REPORT_DRAFT,
    chunk_size: int | None = None,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
) -> ReinferenceRun:
    """Create a run over the cohort the filter selects, frozen into chunks, and enqueue the chunks.

    ``model_version`` is a ModelVersion, its id, or ``"NAME:VERSION"``. Raises :class:`InvalidRecord`
    (HTTP 400) for an unknown or unrunnable model, a kind it does not serve, a specialty it was not
    built for, or an empty cohort; nothing is written then.
    """
    mv = _runnable_version(model_version, kind)
    if cohort.radiologist and not get_user_model().objects.filter(username=cohort.radiologist).exists():
        raise InvalidRecord("unknown radiologist", field="radiologist")
    if cohort.specialty and mv.specialties and cohort.specialty not in mv.specialties:
        raise InvalidRecord(
            f"model {mv.name}:{mv.version} was not built for {cohort.specialty} studies", field="specialty"
        )
    size = chunk_size or chunk_size_default()
    if not 1 <= size <= 1024:
        raise InvalidRecord("chunk_size must be from 1 to 1024", field="chunk_size")
    items = select_cohort(model_version=mv, kind=kind, cohort=cohort)
    if not items:
        raise InvalidRecord(
            f"The cohort is empty: no study matching the filter has both a stored {kind} AI output and a "
            "final signed report.",
            field="cohort",
        )
    limit = _setting("REINFERENCE_MAX_COHORT", 200_000)
    if len(items) > limit:
        raise InvalidRecord(
            f"The cohort has {len(items)} studies, more than the limit of {limit}; narrow it or use sample.",
            field="sample",
        )
    now = timezone.now()
    with transaction.atomic():
        run = ReinferenceRun.objects.create(
            model_version=mv,
            kind=kind,
            cohort_filter=cohort.to_dict(),
            chunk_size=size,
            total=len(items),
            created_by=actor if actor is not None and actor.is_authenticated else None,
        )
        chunks = ReinferenceChunk.objects.bulk_create(
            [
                ReinferenceChunk(run=run, index=index, items=[list(item) for item in part], dispatched_at=now)
                for index, part in enumerate(split(items, size))
            ]
        )
        audit.record(
            "reinference_run.create",
            actor=actor,
            context=context,
            object_type="reinference_run",
            object_id=run.pk,
            details={
                "model_version": mv.pk,
                "model": f"{mv.name}:{mv.version}",
                "kind": kind,
                "cohort_filter": run.cohort_filter,
                "total": run.total,
                "chunks": len(chunks),
            },
        )
        # bulk_create fills primary keys on PostgreSQL and SQLite; read them back to be safe elsewhere.
        _dispatch(list(run.chunks.order_by("index").values_list("pk", flat=True)))
    return run


def reinference_run_cancel(
    *, run: ReinferenceRun, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> ReinferenceRun:
    """Cancel a queued or running run: pending chunks are skipped, a running chunk finishes its batch.

    Raises :class:`RecordConflict` (409) when the run has already ended.
    """
    now = timezone.now()
    with transaction.atomic():
        updated = ReinferenceRun.objects.filter(pk=run.pk, status__in=ACTIVE_RUN_STATUSES).update(
            status=RunStatus.CANCELLED, finished_at=now
        )
        if not updated:
            run.refresh_from_db()
            raise RecordConflict(f"The run has already ended ({run.status}).", field="status")
        skipped = ReinferenceChunk.objects.filter(run=run, status=ChunkStatus.PENDING).update(
            status=ChunkStatus.SKIPPED, finished_at=now
        )
        run.refresh_from_db()
        audit.record(
            "reinference_run.cancel",
            actor=actor,
            context=context,
            object_type="reinference_run",
            object_id=run.pk,
            details={"done": run.done, "failed": run.failed, "total": run.total, "chunks_skipped": skipped},
        )
    return run


def reinference_run_fail(*, run_id: int, error: str) -> bool:
    """Mark an active run failed (the model cannot run): skip its open chunks, audit it. Idempotent."""
    now = timezone.now()
    with transaction.atomic():
        updated = ReinferenceRun.objects.filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES).update(
            status=RunStatus.FAILED, error=error[:2000], finished_at=now
        )
        if not updated:
            return False
        ReinferenceChunk.objects.filter(
            run_id=run_id, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
        ).update(status=ChunkStatus.SKIPPED, lease_owner="", lease_expires_at=None, finished_at=now)
        audit.record(
            "reinference_run.fail",
            actor=None,
            object_type="reinference_run",
            object_id=run_id,
            details={"error": error[:MAX_ERROR_CHARS]},
        )
    return True


def _complete_if_finished(run_id: int, now: Any) -> bool:
    """Inside a transaction: when no chunk is left open, mark the run completed and audit it once."""
    if ReinferenceChunk.objects.filter(
        run_id=run_id, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
    ).exists():
        return False
    updated = ReinferenceRun.objects.filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES).update(
        status=RunStatus.COMPLETED, finished_at=now
    )
    if not updated:
        return False
    run = ReinferenceRun.objects.get(pk=run_id)
    reproduced = run.results.filter(reproduced=True).count()
    audit.record(
        "reinference_run.complete",
        actor=None,
        object_type="reinference_run",
        object_id=run_id,
        details={"total": run.total, "done": run.done, "failed": run.failed, "reproduced": reproduced},
    )
    return True


# --- Processing one chunk --------------------------------------------------------------------------


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
    except Exception as exc:  # noqa: BLE001 - isolate the study that breaks the batch
        _reraise_if_transient(exc)
        pairs = []
        for outcome in todo:
            try:
                pairs.append((outcome, runtime.generate(mv, kind, [outcome.original.inputs])[0]))
            except (runtime.ModelNotRunnable, ArtifactIntegrityError):
                raise
            except Exception as single:  # noqa: BLE001 - recorded as this study's failure
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
        _complete_if_finished(run.pk, now)
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
    if chunk.attempts > _setting("REINFERENCE_MAX_ATTEMPTS", 3):
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


# --- The reaper ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reaped:
    """What one reaper pass did."""

    expired: int
    redispatched: int
    skipped: int
    completed: int


def reinference_reap(*, now: Any = None, redispatch_after: int | None = None) -> Reaped:
    """Hand expired leases back and re-send chunks whose message was lost; close runs with nothing left.

    A chunk whose lease expired (its worker died or hung) returns to ``pending`` and is re-sent. A
    pending chunk of a stalled run (no live lease, nothing started for ``redispatch_after`` seconds,
    default the lease time) is re-sent too: the file-system transport loses the messages a killed
    worker had taken. Re-sending is safe: a chunk is claimed by compare-and-set and closed once.
    """
    now = now or timezone.now()
    redispatch_after = lease_seconds() if redispatch_after is None else redispatch_after
    to_send: list[int] = []
    with transaction.atomic():
        skipped = (
            ReinferenceChunk.objects.filter(status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING])
            .exclude(run__status__in=ACTIVE_RUN_STATUSES)
            .filter(Q(status=ChunkStatus.PENDING) | Q(lease_expires_at__lt=now))
        )
        skipped_count = ReinferenceChunk.objects.filter(
            pk__in=list(skipped.values_list("pk", flat=True))
        ).update(status=ChunkStatus.SKIPPED, lease_owner="", lease_expires_at=None, finished_at=now)
        expired = ReinferenceChunk.objects.filter(
            status=ChunkStatus.RUNNING, lease_expires_at__lt=now, run__status__in=ACTIVE_RUN_STATUSES
        ).values_list("pk", "lease_owner")
        expired_count = 0
        for pk, owner in list(expired):
            if ReinferenceChunk.objects.filter(
                pk=pk, status=ChunkStatus.RUNNING, lease_owner=owner, lease_expires_at__lt=now
            ).update(status=ChunkStatus.PENDING, lease_owner="", dispatched_at=now):  # last lease kept
                logger.warning("re-inference chunk %s: lease of %s expired; handed back", pk, owner)
                to_send.append(pk)
                expired_count += 1
        stale = now - timedelta(seconds=redispatch_after)
        live = ReinferenceChunk.objects.filter(status=ChunkStatus.RUNNING, lease_expires_at__gte=now)
        stalled_runs = (
            ReinferenceRun.objects.filter(status__in=ACTIVE_RUN_STATUSES, chunks__status=ChunkStatus.PENDING)
            .exclude(pk__in=live.values("run_id"))
            .exclude(chunks__started_at__gte=stale)
            .values_list("pk", flat=True)
            .distinct()
        )
        resend = ReinferenceChunk.objects.filter(
            run_id__in=list(stalled_runs), status=ChunkStatus.PENDING, dispatched_at__lte=stale
        ).exclude(pk__in=to_send)
        resend_ids = list(resend.values_list("pk", flat=True))
        ReinferenceChunk.objects.filter(pk__in=resend_ids).update(dispatched_at=now)
        to_send += resend_ids
        completed = 0
        for run_id in ReinferenceRun.objects.filter(status__in=ACTIVE_RUN_STATUSES).values_list(
            "pk", flat=True
        ):
            completed += _complete_if_finished(run_id, now)
        _dispatch(to_send)
    return Reaped(
        expired=expired_count, redispatched=len(resend_ids), skipped=skipped_count, completed=completed
    )
