"""Re-inference runs: create (freeze the cohort into chunks, send one task per chunk), cancel, fail.

The life of a run: :func:`reinference_run_create` freezes the cohort into chunks and, after commit,
sends one Celery task per chunk; each chunk is processed by :mod:`inference.reinference.chunks`, and
:mod:`inference.reinference.reaper` hands back chunks whose worker died. A run completes when no chunk
is left open (:func:`complete_if_finished`, called inside the transaction that closes a chunk).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from audit import log as audit
from inference.models import (
    ACTIVE_RUN_STATUSES,
    ChunkStatus,
    ReinferenceChunk,
    ReinferenceRun,
    RunStatus,
)
from inference.registry import ArtifactIntegrityError, verify_artifacts
from inference.reinference.cohort import CohortFilter, modalities_in_data, select_cohort, split
from inference.selectors import model_version_by_reference
from portal.core.enqueue import enqueue_on_commit
from portal.core.errors import InvalidRecord, RecordConflict
from portal.records.models import AIOutputKind, ModelVersion

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


def max_attempts() -> int:
    """How many lost attempts a chunk gets before its studies are recorded as failed."""
    return _setting("REINFERENCE_MAX_ATTEMPTS", 3)


def worker_identity() -> str:
    """Who holds a lease: host, process and thread (a retry in the same thread may re-claim its chunk)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:255]


def dispatch(chunk_ids: Sequence[int]) -> None:
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


def _refuse_empty_cohort(kind: str, cohort: CohortFilter) -> NoReturn:
    """Say why no study matched: a modality the data does not have (with the codes it has), else empty."""
    if cohort.modality:
        known = modalities_in_data()
        if cohort.modality.upper() not in known:
            # "XR" for plain films is the usual slip: say which codes the data has (CR, DX, ...).
            raise InvalidRecord(
                f"No study has modality {cohort.modality}; the studies here have "
                f"{', '.join(known) or 'no modality recorded'}.",
                field="modality",
            )
    raise InvalidRecord(
        f"The cohort is empty: no study matching the filter has both a stored {kind} AI output and a "
        "final signed report.",
        field="cohort",
    )


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
        _refuse_empty_cohort(kind, cohort)
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
        dispatch(list(run.chunks.order_by("index").values_list("pk", flat=True)))
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


def complete_if_finished(run_id: int, now: Any) -> bool:
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
