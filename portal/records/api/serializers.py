"""API serializers: nested Input serializers validate writes into neutral payloads; Output ones render."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from portal.records.ingest.payloads import (
    AdapterError,
    AIOutputPayload,
    PatientPayload,
    SignedReportPayload,
    StudyPayload,
    clean_text,
)
from portal.records.models import (
    AIOutput,
    AIOutputKind,
    Patient,
    Priority,
    ReportStatus,
    Sex,
    SignedReport,
    Specialty,
    Study,
)

MAX_JSON_DEPTH = 8
MAX_JSON_ITEMS = 2_000


class CleanTextField(serializers.CharField):
    """A text field that refuses control characters and normalises line endings (kept verbatim else)."""

    def __init__(self, *, max_chars: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        self.max_chars = max_chars

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("Not a string.")
        try:
            return clean_text(data, max_len=self.max_chars or settings.CONCORDANCE_MAX_TEXT_CHARS)
        except AdapterError as exc:
            raise serializers.ValidationError(exc.message) from exc


class BoundedJSONField(serializers.JSONField):
    """A JSON object with bounded depth and size (provenance blobs must stay reviewable)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        count = _check_json(data, 0)
        if count > MAX_JSON_ITEMS:
            raise serializers.ValidationError(f"Too many items (over {MAX_JSON_ITEMS}).")
        return super().to_internal_value(data)


def _check_json(value: Any, depth: int) -> int:
    if depth > MAX_JSON_DEPTH:
        raise serializers.ValidationError(f"Nested deeper than {MAX_JSON_DEPTH} levels.")
    if isinstance(value, dict):
        return 1 + sum(_check_json(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_check_json(v, depth + 1) for v in value)
    if isinstance(value, str) and "\x00" in value:
        raise serializers.ValidationError("NUL characters are not allowed.")
    return 1


class PatientInput(serializers.Serializer):
    """A patient as sent with a study."""

    mrn = CleanTextField(max_chars=64)
    family_name = CleanTextField(max_chars=128, required=False, default="")
    given_name = CleanTextField(max_chars=128, required=False, default="")
    birth_date = serializers.DateField(required=False, allow_null=True, default=None)
    sex = serializers.ChoiceField(choices=Sex.choices, required=False, default=Sex.UNKNOWN)

    def validate_mrn(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("MRN must not be blank.")
        return value.strip()


class StudyInput(serializers.Serializer):
    """A study to create (idempotent by accession number)."""

    study_instance_uid = serializers.RegexField(
        r"^[0-9]+(\.[0-9]+)*$", max_length=64, required=False, allow_null=True, default=None
    )
    accession_number = CleanTextField(max_chars=64)
    patient = PatientInput()
    modality = serializers.RegexField(r"^[A-Z]{2,8}$", required=False, default="")
    body_part = CleanTextField(max_chars=64, required=False, default="")
    specialty = serializers.ChoiceField(
        choices=Specialty.choices, required=False, allow_null=True, default=None
    )
    study_datetime = serializers.DateTimeField(required=False, allow_null=True, default=None)
    description = CleanTextField(max_chars=256, required=False, default="")
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, default=Priority.ROUTINE)
    referring_physician = CleanTextField(max_chars=256, required=False, default="")
    dicom_header = BoundedJSONField(required=False, default=dict)

    def validate_accession_number(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Accession number must not be blank.")
        return value.strip()

    def to_payload(self) -> StudyPayload:
        """The neutral payload the record services consume."""
        data = dict(self.validated_data)
        data["patient"] = PatientPayload(**data["patient"])
        return StudyPayload(**data)


class AIOutputInput(serializers.Serializer):
    """An AI output with its provenance (what the model considered and how it generated)."""

    accession_number = CleanTextField(max_chars=64)
    study_instance_uid = serializers.RegexField(
        r"^[0-9]+(\.[0-9]+)*$", max_length=64, required=False, allow_null=True, default=None
    )
    kind = serializers.ChoiceField(choices=AIOutputKind.choices)
    model_name = CleanTextField(max_chars=128)
    model_version = CleanTextField(max_chars=64)
    inputs = BoundedJSONField(required=False, default=dict)
    generation_settings = BoundedJSONField(required=False, default=dict)
    text = CleanTextField()
    prompt_tokens = serializers.IntegerField(
        min_value=0, max_value=10_000_000, required=False, allow_null=True, default=None
    )
    completion_tokens = serializers.IntegerField(
        min_value=0, max_value=10_000_000, required=False, allow_null=True, default=None
    )
    latency_ms = serializers.FloatField(
        min_value=0, max_value=86_400_000, required=False, allow_null=True, default=None
    )
    generated_at = serializers.DateTimeField()

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Text must not be blank.")
        return value

    def to_payload(self) -> AIOutputPayload:
        """The neutral payload the record services consume."""
        return AIOutputPayload(**self.validated_data)


class SectionsInput(serializers.Serializer):
    """Report sections; any may be missing."""

    indication = CleanTextField(required=False, default="", allow_blank=True)
    technique = CleanTextField(required=False, default="", allow_blank=True)
    comparison = CleanTextField(required=False, default="", allow_blank=True)
    findings = CleanTextField(required=False, default="", allow_blank=True)
    impression = CleanTextField(required=False, default="", allow_blank=True)


class SignedReportInput(serializers.Serializer):
    """A signed report, addendum or correction."""

    accession_number = CleanTextField(max_chars=64)
    study_instance_uid = serializers.RegexField(
        r"^[0-9]+(\.[0-9]+)*$", max_length=64, required=False, allow_null=True, default=None
    )
    radiologist = CleanTextField(max_chars=150)
    sections = SectionsInput(required=False, default=dict)
    text = CleanTextField(required=False, default="", allow_blank=True)
    signed_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=ReportStatus.choices, default=ReportStatus.FINAL)
    amends = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sections = {k: v for k, v in (attrs.get("sections") or {}).items() if v.strip()}
        if not attrs.get("text", "").strip() and not sections:
            raise serializers.ValidationError({"text": "A signed report needs text or sections."})
        return attrs

    def to_payload(self) -> SignedReportPayload:
        """The neutral payload the record services consume."""
        data = self.validated_data
        return SignedReportPayload(
            accession_number=data["accession_number"],
            study_instance_uid=data["study_instance_uid"],
            radiologist_username=data["radiologist"],
            sections={k: v for k, v in dict(data.get("sections") or {}).items() if v.strip()},
            text=data.get("text", ""),
            signed_at=data["signed_at"],
            status=data["status"],
            amends_report_id=str(data["amends"]) if data.get("amends") else None,
        )


# --- Output ----------------------------------------------------------------------------------------


class PatientOutput(serializers.ModelSerializer):
    """A patient's demographics (only for roles that may read them)."""

    class Meta:
        model = Patient
        fields = ["mrn", "family_name", "given_name", "birth_date", "sex"]


class StudyOutput(serializers.ModelSerializer):
    """A study as the API returns it."""

    patient = PatientOutput(read_only=True)

    class Meta:
        model = Study
        fields = [
            "id",
            "study_instance_uid",
            "accession_number",
            "patient",
            "modality",
            "body_part",
            "specialty",
            "study_datetime",
            "description",
            "priority",
            "referring_physician",
            "dicom_header",
            "created_at",
        ]


class AIOutputOutput(serializers.ModelSerializer):
    """An AI output with its provenance."""

    accession_number = serializers.CharField(source="study.accession_number", read_only=True)
    model_name = serializers.CharField(source="model_version.name", read_only=True)
    model_version = serializers.CharField(source="model_version.version", read_only=True)

    class Meta:
        model = AIOutput
        fields = [
            "id",
            "accession_number",
            "study",
            "kind",
            "model_name",
            "model_version",
            "inputs",
            "generation_settings",
            "text",
            "text_sha256",
            "payload_sha256",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms",
            "generated_at",
            "origin",
            "created_at",
        ]


class SignedReportOutput(serializers.ModelSerializer):
    """A signed report (or amendment) as the API returns it."""

    accession_number = serializers.CharField(source="study.accession_number", read_only=True)
    radiologist = serializers.CharField(source="radiologist.username", read_only=True)

    class Meta:
        model = SignedReport
        fields = [
            "id",
            "accession_number",
            "study",
            "radiologist",
            "sections",
            "text",
            "text_sha256",
            "payload_sha256",
            "signed_at",
            "status",
            "amends",
            "created_at",
        ]
