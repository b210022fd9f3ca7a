"""The clinical record: patients, studies, AI outputs and signed reports.

AI outputs and signed reports are evidence: once written they never change. The database enforces
that with triggers (see :mod:`audit.immutability`), not only Python; a correction is a new
SignedReport that points at the one it amends.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes: the hash stored beside every AI output and report."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Specialty(models.TextChoices):
    """Subspecialty of a study; decides which model version drafts it."""

    CHEST = "chest", "Chest"
    NEURO = "neuro", "Neuro"
    MUSCULOSKELETAL = "musculoskeletal", "Musculoskeletal"
    ABDOMINAL = "abdominal", "Abdominal"
    BREAST = "breast", "Breast"


class Priority(models.TextChoices):
    """Reading priority as the RIS orders it."""

    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    STAT = "stat", "STAT"


class Sex(models.TextChoices):
    """Administrative sex as HL7 (PID-8) and DICOM (PatientSex) carry it."""

    MALE = "M", "Male"
    FEMALE = "F", "Female"
    OTHER = "O", "Other"
    UNKNOWN = "U", "Unknown"


class Patient(models.Model):
    """A patient, identified by the hospital's medical record number (MRN).

    Demographics are kept only as far as QA and legal export need them.
    """

    mrn = models.CharField("MRN", max_length=64, unique=True)
    family_name = models.CharField(max_length=128, blank=True)
    given_name = models.CharField(max_length=128, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(mrn=""), name="patient_mrn_not_empty")]

    def __str__(self) -> str:
        return f"Patient {self.pk}"  # never the name or MRN: str() ends up in logs


class Study(models.Model):
    """An imaging study (one accession), with the subset of its DICOM header that QA needs.

    The StudyInstanceUID is unique when known; HL7 results may arrive before the DICOM header, so it
    may be filled in later (never changed once set). The accession number may be unknown too: an
    unscheduled or outside study arrives from the PACS without one and is kept under its
    StudyInstanceUID until the RIS message that names its accession joins it (see
    ``records.services.study_ingest``). At least one of the two keys is always known.
    """

    # NULL, not "", for "not known yet": the unique constraints must ignore unknown keys.
    study_instance_uid = models.CharField("Study Instance UID", max_length=64, null=True, blank=True)  # noqa: DJ001
    accession_number = models.CharField(max_length=64, unique=True, null=True, blank=True)  # noqa: DJ001
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    modality = models.CharField(max_length=16, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    specialty = models.CharField(max_length=32, choices=Specialty.choices, blank=True)
    study_datetime = models.DateTimeField(null=True, blank=True)
    description = models.CharField(max_length=256, blank=True)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.ROUTINE)
    referring_physician = models.CharField(max_length=256, blank=True)
    dicom_header = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"
        constraints = [
            models.UniqueConstraint(
                fields=["study_instance_uid"],
                condition=Q(study_instance_uid__isnull=False),
                name="study_uid_unique_when_known",
            ),
            models.CheckConstraint(condition=~Q(accession_number=""), name="study_accession_not_empty"),
            models.CheckConstraint(
                condition=Q(accession_number__isnull=False) | Q(study_instance_uid__isnull=False),
                name="study_has_a_key",
            ),
        ]
        indexes = [
            models.Index(fields=["study_datetime", "id"]),
            models.Index(fields=["specialty", "modality", "study_datetime"]),
            # The modality lists of the launch form and filters (SELECT DISTINCT modality).
            models.Index(fields=["modality"], name="records_study_modality_idx"),
        ]

    def __str__(self) -> str:
        return f"Study {self.pk}"


class ModelStatus(models.TextChoices):
    """Where a model version stands: only ``active`` versions draft clinical reports."""

    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    """A version of the local drafting model: the registry entry every AI output points at.

    Versions named by ingested outputs are created on first sight with only ``name`` and ``version``
    (the model ran elsewhere). Versions built or registered here also carry their artifact directory,
    the SHA-256 of every file in it (checked before each load), the model card and its lineage.
    ``artifact_sha256`` is the hash of the canonical ``{file: sha256}`` map, one value naming the whole
    artifact. ``specialties`` empty means the card does not restrict it.
    """

    name = models.CharField(max_length=128)
    version = models.CharField(max_length=64)
    specialty = models.CharField(max_length=32, choices=Specialty.choices, blank=True)
    specialties = models.JSONField(default=list, blank=True)
    kinds = models.JSONField(default=list, blank=True)
    architecture = models.CharField(max_length=32, blank=True)
    artifact_dir = models.CharField(max_length=512, blank=True)
    artifacts = models.JSONField(default=dict, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    tokenizer_sha256 = models.CharField(max_length=64, blank=True)
    quantisation = models.CharField(max_length=32, default="fp32", blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    lineage = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    card = models.JSONField(default=dict, blank=True)
    generation_defaults = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="model_version_unique")]
        indexes = [models.Index(fields=["status", "specialty"])]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def is_runnable(self) -> bool:
        """True when this version has local artifacts the runtime can load."""
        return bool(self.artifact_dir and self.artifacts)


class AIOutputKind(models.TextChoices):
    """What the model drafted."""

    REPORT_DRAFT = "report_draft", "Report draft"
    HISTORY_SUMMARY = "history_summary", "History summary"
    PRIOR_COMPARISON = "prior_comparison", "Comparison with prior"
    PATIENT_LETTER = "patient_letter", "Patient letter"


class AIOutputOrigin(models.TextChoices):
    """Whether the output was part of clinical care or produced later by a re-inference run."""

    CLINICAL = "clinical", "Clinical"
    REINFERENCE = "reinference", "Re-inference"


class AIOutput(models.Model):
    """One text the model produced, with everything it considered (provenance). Immutable.

    ``inputs`` is what the model saw (structured findings, indication, prior report ids);
    ``generation_settings`` how it decoded. ``payload_sha256`` hashes the whole canonical payload so a
    re-sent identical payload is recognised and a conflicting one refused.
    """

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="ai_outputs")
    kind = models.CharField(max_length=32, choices=AIOutputKind.choices)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="outputs")
    inputs = models.JSONField(default=dict)
    generation_settings = models.JSONField(default=dict)
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    payload_sha256 = models.CharField(max_length=64)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    generated_at = models.DateTimeField()
    origin = models.CharField(max_length=16, choices=AIOutputOrigin.choices, default=AIOutputOrigin.CLINICAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # The natural key: one output of a kind per model version and generation time.
            models.UniqueConstraint(
                fields=["study", "kind", "model_version", "generated_at"], name="ai_output_natural_key"
            ),
            models.CheckConstraint(
                condition=Q(latency_ms__isnull=True) | Q(latency_ms__gte=0), name="ai_output_latency_ge_0"
            ),
            models.CheckConstraint(condition=~Q(text=""), name="ai_output_text_not_empty"),
        ]
        indexes = [
            models.Index(fields=["study", "kind"]),
            models.Index(fields=["model_version", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"AIOutput {self.pk} ({self.kind})"


class ReportStatus(models.TextChoices):
    """A signed report's place in its chain: the original final report, or a later amendment."""

    FINAL = "final", "Final"
    ADDENDUM = "addendum", "Addendum"
    CORRECTION = "correction", "Correction"


# The authority under which a portal account is its own clinician (reports sent by username).
PORTAL_AUTHORITY = "portal"


class Clinician(models.Model):
    """A clinician as the hospital's systems know them: keyed by (assigning authority, identifier).

    Feeds name signers by a provider number and who issued it (RIS ``OBR-32``, FHIR Practitioner
    identifier, DICOM VerifyingObserver); a reader unknown so far becomes a new row, so no report is
    refused for want of an account. ``account`` links the clinician to a portal account when an
    admin has matched them (several clinician keys may be one person, hence one account); it is the
    only link from a signed report to an account, and it may be set long after the report was stored.
    ``fhir_id`` is the logical id a FHIR client may use to reference this clinician as a Practitioner.
    """

    authority = models.CharField("assigning authority", max_length=200)
    identifier = models.CharField(max_length=64)
    family_name = models.CharField(max_length=128, blank=True)
    given_name = models.CharField(max_length=128, blank=True)
    middle_name = models.CharField(max_length=128, blank=True)
    prefix = models.CharField(max_length=32, blank=True)
    suffix = models.CharField(max_length=32, blank=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="clinicians",
    )
    fhir_id = models.CharField(max_length=64, null=True, blank=True, unique=True)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["authority", "identifier"], name="clinician_key_unique"),
            models.CheckConstraint(
                condition=~Q(authority="") & ~Q(identifier=""), name="clinician_key_not_empty"
            ),
        ]
        indexes = [models.Index(fields=["account"]), models.Index(fields=["family_name", "given_name"])]

    def __str__(self) -> str:
        return f"Clinician {self.pk}"  # never the name: str() ends up in logs

    @property
    def display_name(self) -> str:
        """``"Family, Given"`` (or whichever part is known), else the key."""
        name = ", ".join(part for part in (self.family_name, self.given_name) if part)
        return name or f"{self.identifier} ({self.authority})"


class SignedReport(models.Model):
    """What a radiologist signed. Immutable: addenda and corrections are new rows that amend it.

    Each study has at most one original ``final`` report; every addendum or correction points at the
    report it amends (a chain, never an edit). ``clinician`` is who signed it, as the feed named them;
    ``radiologist`` is the portal account that clinician was linked to when the report was stored
    (empty for a reader nobody has linked yet: ask ``clinician.account`` for the current link).
    """

    SECTION_NAMES = ("indication", "technique", "comparison", "findings", "impression")

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="signed_reports")
    radiologist = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="signed_reports",
    )
    clinician = models.ForeignKey(Clinician, on_delete=models.PROTECT, related_name="signed_reports")
    sections = models.JSONField(default=dict)
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    payload_sha256 = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.FINAL)
    amends = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="amendments"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study"], condition=Q(status="final"), name="one_final_report_per_study"
            ),
            models.UniqueConstraint(
                fields=["study", "status", "signed_at"], name="signed_report_natural_key"
            ),
            models.CheckConstraint(
                condition=(Q(status="final") & Q(amends__isnull=True))
                | (~Q(status="final") & Q(amends__isnull=False)),
                name="amendment_points_at_report",
            ),
            models.CheckConstraint(condition=~Q(text=""), name="signed_report_text_not_empty"),
        ]
        indexes = [
            models.Index(fields=["radiologist", "signed_at"]),
            models.Index(fields=["clinician", "signed_at"]),
            models.Index(fields=["signed_at", "id"]),
        ]

    def __str__(self) -> str:
        return f"SignedReport {self.pk} ({self.status})"

    def save(self, *args: object, **kwargs: object) -> None:
        """A report stored with only a portal account is signed by that account's own clinician."""
        if self.clinician_id is None and self.radiologist_id is not None:
            account = self.radiologist
            self.clinician, _ = Clinician.objects.get_or_create(
                authority=PORTAL_AUTHORITY,
                identifier=account.get_username()[:64],
                defaults={
                    "account": account,
                    "family_name": account.last_name,
                    "given_name": account.first_name,
                },
            )
        super().save(*args, **kwargs)


class GroundTruthLabel(models.Model):
    """A known difference between a study's AI draft and its signed report.

    Written by the synthetic demo generator for every perturbation it injects into an AI draft: the
    labelled evaluation set of the discrepancy engine. Real departments have none until a QA committee
    adjudicates (those adjudications live in the review app).
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="ground_truth_labels")
    category = models.CharField(max_length=32)
    concept = models.CharField(max_length=128)
    detail = models.CharField(max_length=256, blank=True)
    source = models.CharField(max_length=32, default="synthetic")

    class Meta:
        indexes = [models.Index(fields=["category"])]

    def __str__(self) -> str:
        return f"GroundTruthLabel {self.pk} {self.category}"


class FhirPatientId(models.Model):
    """A logical id by which FHIR clients reference a patient (``"Patient/<logical_id>"``).

    Assigned when a client posts a Patient (or puts one under its own id in a Bundle); later
    DiagnosticReports may then name their subject by that literal reference alone.
    """

    logical_id = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="fhir_ids")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"FhirPatientId {self.pk}"


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class InboundChannel(models.TextChoices):
    """The interface a message came in by."""

    HL7_HTTP = "hl7_http", "HL7 v2 over HTTP"
    HL7_MLLP = "hl7_mllp", "HL7 v2 over MLLP"
    FHIR = "fhir", "FHIR R4"
    DICOM = "dicom", "DICOM"


class InboundOutcome(models.TextChoices):
    """What became of an inbound message."""

    STORED = "stored", "Stored"
    DUPLICATE = "duplicate", "Already stored"
    IGNORED = "ignored", "Acknowledged, not stored"
    REJECTED = "rejected", "Rejected"
    ERROR = "error", "Error (retry)"


class InboundMessage(models.Model):
    """One message exactly as an interface received it, with what became of it: nothing is lost.

    Written before the answer goes back to the sender, for every channel and every outcome, so an
    integration admin can see each refusal with its reason and replay the message once the cause is
    fixed (``replay_of`` points at the message replayed; a replay is a new row, the original stays as
    it was). ``reason`` and ``location`` are the adapter's or service's message, which names fields,
    never their values. ``body`` holds PHI: it is shown only to admins and never logged.
    """

    channel = models.CharField(max_length=16, choices=InboundChannel.choices)
    endpoint = models.CharField(max_length=64, blank=True)  # FHIR: the resource type posted to, "" a Bundle
    received_at = models.DateTimeField()
    latency_ms = models.FloatField()
    body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    content_type = models.CharField(max_length=128, blank=True)
    message_id = models.CharField(max_length=200, blank=True)  # MSH-10, resource id, SOP Instance UID
    outcome = models.CharField(max_length=16, choices=InboundOutcome.choices)
    status_code = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=500, blank=True)
    location = models.CharField(max_length=200, blank=True)
    records = models.JSONField(default=list, blank=True)  # [{"type": "signed_report", "id": 7}, ...]
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    replay_of = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replays"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(latency_ms__gte=0), name="inbound_latency_ge_0"),
            models.CheckConstraint(
                condition=Q(status_code__gte=100) & Q(status_code__lte=599), name="inbound_status_code_http"
            ),
        ]
        indexes = [
            models.Index(fields=["channel", "received_at"]),
            models.Index(fields=["outcome", "received_at"]),
        ]

    def __str__(self) -> str:
        return f"InboundMessage {self.pk} ({self.channel}, {self.outcome})"

    @property
    def is_replayable(self) -> bool:
        """False for a body refused unread (over the size limit): there is nothing to send again."""
        return self.size == 0 or self.body_sha256 != EMPTY_SHA256
