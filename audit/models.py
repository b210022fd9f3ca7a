"""The audit trail: an append-only, Merkle-tree log (RFC 9162 style) with signed checkpoints.

``audit`` imports no domain app: events reference objects generically (type + id), and patients and
studies by their primary keys, so any app can record into it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ActorKind(models.TextChoices):
    """Who acted: a person, an integration/service account, or the system itself (tasks, beat)."""

    USER = "user", "User"
    SERVICE = "service", "Service account"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Anonymous"


class AuditEvent(models.Model):
    """One audited action: a create, a view of patient data, an export, a login, a denial. Immutable.

    ``seq`` is the event's leaf index in the Merkle tree (0-based), assigned at INSERT by
    :mod:`audit.sequencer` without any lock held across the caller's transaction; numbers released by
    transactions that never committed become "void" leaves when the integrator proves them abandoned,
    so the integrated log is gap-free. ``leaf_hash`` = SHA-256(0x00 || canonical JSON of
    :meth:`leaf_document`). The integrator (:mod:`audit.integrator`) adds events to the tree later.
    """

    seq = models.BigIntegerField(primary_key=True)
    recorded_at = models.DateTimeField()
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    patient_id = models.BigIntegerField(null=True, blank=True)
    study_id = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    client_address = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    channel = models.CharField(max_length=128, blank=True)  # page or endpoint through which it happened
    leaf_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(seq__gte=0), name="audit_seq_non_negative")]
        indexes = [
            models.Index(fields=["patient_id", "seq"]),
            models.Index(fields=["study_id", "seq"]),
            models.Index(fields=["actor_id", "seq"]),
            models.Index(fields=["action", "seq"]),
            models.Index(fields=["recorded_at"]),
        ]

    def __str__(self) -> str:
        return f"AuditEvent {self.seq} {self.action}"

    def leaf_document(self) -> dict:
        """The exact document whose canonical JSON is hashed into the leaf."""
        return leaf_document(*(getattr(self, name) for name in LEAF_FIELDS))


# The columns that go into a leaf, in the order leaf_document() takes them. verify_audit reads them
# with values_list() (tuples, not model instances) to check a million events in seconds.
LEAF_FIELDS = (
    "seq",
    "recorded_at",
    "actor_kind",
    "actor_id",
    "actor_username",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "study_id",
    "details",
    "client_address",
    "user_agent",
    "channel",
)


def leaf_document(
    seq,
    recorded_at,
    actor_kind,
    actor_id,
    actor_username,
    action,
    object_type,
    object_id,  # noqa: ANN001, PLR0913
    patient_id,
    study_id,
    details,
    client_address,
    user_agent,
    channel,
) -> dict:
    """Build the hashed document of an event from its column values (see :data:`LEAF_FIELDS`)."""
    return {
        "seq": seq,
        "recorded_at": recorded_at.isoformat().replace("+00:00", "Z"),
        "actor": {"kind": actor_kind, "id": actor_id, "username": actor_username},
        "action": action,
        "object": {"type": object_type, "id": object_id},
        "patient_id": patient_id,
        "study_id": study_id,
        "details": details,
        "client_address": client_address,
        "user_agent": user_agent,
        "channel": channel,
    }


class AuditNode(models.Model):
    """The hash of a complete (power-of-two, aligned) subtree: level >= 1, covering leaves
    ``[index * 2**level, (index + 1) * 2**level)``. Stored as the log grows so that any inclusion or
    consistency proof needs O(log n) lookups instead of rehashing the whole log. Immutable.
    """

    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["level", "index"], name="audit_node_unique")]

    def __str__(self) -> str:
        return f"AuditNode L{self.level} #{self.index}"


class AuditLogHead(models.Model):
    """The integrated tree: how many leaves the Merkle tree holds and its frontier, plus the
    integrator's lease and its sequencing fence.

    Requests never touch this row. The integrator locks it for the duration of one batch (that lock
    is the lease: two integrators cannot interleave, and a killed one releases it with its
    connection), appends the batch's leaves, stores the completed subtrees and moves ``size`` on, all
    in one transaction. ``fence_seq``/``fence_xid`` (PostgreSQL only) record the last number the
    sequence had handed out and an xid assigned just after; once no older transaction is running,
    every missing number up to ``fence_seq`` is provably abandoned (see audit/sequencer.py).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    size = models.BigIntegerField(default=0)
    frontier = models.JSONField(default=list)  # [[level, hex hash], ...] left to right
    fence_seq = models.BigIntegerField(null=True, blank=True)
    fence_xid = models.CharField(max_length=20, blank=True)
    integrated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="audit_head_singleton")]

    def __str__(self) -> str:
        return f"AuditLogHead size={self.size}"


class Checkpoint(models.Model):
    """A signed tree head: the log's size and Merkle root at a moment, signed with the portal's
    Ed25519 key. Kept outside the log's reach (exported, shipped), checkpoints are what make a
    rewritten history detectable. Immutable.
    """

    tree_size = models.BigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    timestamp_ms = models.BigIntegerField()
    signature = models.CharField(max_length=128)  # base64 Ed25519 signature
    key_fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tree_size"]

    def __str__(self) -> str:
        return f"Checkpoint size={self.tree_size}"


class VerificationOrigin(models.TextChoices):
    """What started a verification: shown beside its result on the auditor's page."""

    COMMAND = "command", "manage.py verify_audit"
    STARTUP = "startup", "at start-up"
    SCHEDULE = "schedule", "scheduled"
    AUDITOR = "auditor", "on request"


class VerificationRun(models.Model):
    """The result of one verification of the log (``manage.py verify_audit`` or the beat job): full
    (every leaf from 0) or incremental (from the last checkpoint a previous run verified)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    tree_size = models.BigIntegerField()
    checkpoints_checked = models.PositiveIntegerField()
    ok = models.BooleanField()
    first_failure_seq = models.BigIntegerField(null=True, blank=True)
    message = models.TextField()
    # The largest signed checkpoint this run verified: where the next incremental run starts.
    checkpoint_size = models.BigIntegerField(null=True, blank=True)
    full = models.BooleanField(default=True)
    # Who or what asked for it, so the auditor's page can say "at start-up" or "asked by otto".
    origin = models.CharField(
        max_length=16, choices=VerificationOrigin.choices, default=VerificationOrigin.COMMAND
    )
    requested_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-finished_at"]

    def __str__(self) -> str:
        return f"VerificationRun {self.pk} ok={self.ok}"


class VerificationJobState(models.TextChoices):
    """Where a requested verification stands."""

    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Running"
    DONE = "done", "Finished"
    FAILED = "failed", "Could not run"


class VerificationJob(models.Model):
    """One "Verify now" request from the auditor's page, followed until its result is stored.

    The page creates the row (queued) and enqueues the worker task with its id; the task marks it
    running, records how many events it has recomputed as it goes (the page polls it), and links the
    :class:`VerificationRun` it stored, or says why it could not run (the key file is unreadable, say).
    """

    requested_at = models.DateTimeField(auto_now_add=True)
    requested_by = models.CharField(max_length=150, blank=True)
    full = models.BooleanField(default=True)
    state = models.CharField(
        max_length=8, choices=VerificationJobState.choices, default=VerificationJobState.QUEUED
    )
    events_done = models.BigIntegerField(default=0)
    events_total = models.BigIntegerField(default=0)
    run = models.OneToOneField(VerificationRun, null=True, blank=True, on_delete=models.PROTECT)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=VerificationJobState.values), name="audit_verification_job_state"
            ),
            models.CheckConstraint(
                condition=Q(events_done__gte=0) & Q(events_total__gte=0), name="audit_verification_job_counts"
            ),
            # A finished job points at its stored result; an unfinished one has none yet.
            models.CheckConstraint(
                condition=Q(state=VerificationJobState.DONE, run__isnull=False)
                | (~Q(state=VerificationJobState.DONE) & Q(run__isnull=True)),
                name="audit_verification_job_done_has_run",
            ),
        ]

    def __str__(self) -> str:
        return f"VerificationJob {self.pk} {self.state}"

    @property
    def finished(self) -> bool:
        """Nothing more will change: the page stops polling."""
        return self.state in (VerificationJobState.DONE, VerificationJobState.FAILED)

    @property
    def percent(self) -> int:
        """Share of the events recomputed so far, 0-100."""
        if self.state == VerificationJobState.DONE:
            return 100
        return min(100, self.events_done * 100 // self.events_total) if self.events_total else 0
