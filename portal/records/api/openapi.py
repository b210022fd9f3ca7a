"""What the published OpenAPI schema says about the records API, where drf-spectacular cannot infer it.

A client generated from the schema should send what the server accepts: the text fields refuse
control characters and blank values and have a length limit; the JSON provenance fields take an
object. The standards endpoints (FHIR, HL7 v2, DICOM) read raw bodies, so their request bodies are
declared here, with one synthetic example each, as small ``extend_schema`` decorators that
:mod:`portal.records.api.standards` applies (the schema lives here, the parsing there).

Loaded by :class:`portal.records.apps.RecordsConfig` so that the extensions are registered before
the first schema is generated.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema

# C0 controls other than TAB, LF and CR are refused (records.ingest.payloads.clean_text); JSON Schema
# patterns are ECMA-262, where \u escapes name the characters.
_ALLOWED_CHAR = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f]"
TEXT_PATTERN = rf"^{_ALLOWED_CHAR}*$"
# Not blank: at least one character that is neither whitespace nor a control character.
NON_BLANK_TEXT_PATTERN = rf"^{_ALLOWED_CHAR}*[^\s\u0000-\u001f]{_ALLOWED_CHAR}*$"


class CleanTextFieldExtension(OpenApiSerializerFieldExtension):
    """``CleanTextField``: a string without control characters, not blank unless allowed, bounded."""

    target_class = "portal.records.api.serializers.CleanTextField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        """The field's JSON Schema; responses are plain strings (stored text is already clean)."""
        field = self.target
        if direction == "response":
            return {"type": "string"}
        limit = field.max_chars or settings.CONCORDANCE_MAX_TEXT_CHARS
        schema: dict[str, Any] = {"type": "string", "maxLength": limit}
        if field.allow_blank:
            schema["pattern"] = TEXT_PATTERN
        else:
            schema["pattern"] = NON_BLANK_TEXT_PATTERN
            schema["minLength"] = 1
        return schema


class BoundedJSONFieldExtension(OpenApiSerializerFieldExtension):
    """``BoundedJSONField``: a JSON object (depth and size are bounded; see the field)."""

    target_class = "portal.records.api.serializers.BoundedJSONField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        """An object of any values, at most eight levels deep and 2,000 items."""
        return {
            "type": "object",
            "additionalProperties": {},
            "description": "A JSON object, at most 8 levels deep and 2,000 items; no NUL characters.",
        }


OPERATION_OUTCOME = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier types: ACSN, MR

_FHIR_EXAMPLE = {
    "resourceType": "DiagnosticReport",
    "identifier": [
        {
            "type": {"coding": [{"system": _V2_0203, "code": "ACSN"}]},
            "value": "ACC-EXAMPLE-1",
        }
    ],
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2", "display": "CT Chest"}]},
    "contained": [
        {
            "resourceType": "Patient",
            "id": "pat",
            "identifier": [
                {
                    "type": {
                        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                    },
                    "value": "MRN-EXAMPLE-1",
                }
            ],
            "name": [{"family": "Example", "given": ["Pat"]}],
        }
    ],
    "subject": {"reference": "#pat"},
    "effectiveDateTime": "2026-03-01T09:30:00+00:00",
    "issued": "2026-03-01T10:14:00+00:00",
    "resultsInterpreter": [{"identifier": {"system": "urn:concordance:username", "value": "dr_example"}}],
    "conclusion": "No acute cardiopulmonary abnormality.",
    "presentedForm": [{"contentType": "text/plain; charset=utf-8", "data": "RklORElOR1M6Ck5vcm1hbC4="}],
}

_HL7_EXAMPLE = "\r".join(
    [
        "MSH|^~\\&|RIS|HOSP|CONCORDANCE|QA|20260301101500+0000||ORU^R01^ORU_R01|MSG00001|P|2.5.1",
        "PID|1||MRN-EXAMPLE-1^^^HOSP^MR||Example^Pat",
        "OBR|1|PL1|ACC-EXAMPLE-1|71250^CT CHEST^CPT4|||202603010930|||||||||||||||202603011014+0000||CT|F"
        "|||||||dr_example",
        "OBX|1|TX|18782-3^Study observation^LN||FINDINGS: Normal.||||||F",
        "OBX|2|TX|19005-8^Impression^LN||IMPRESSION: No acute abnormality.||||||F",
    ]
)

#: Any FHIR R4 resource: named by ``resourceType`` (each endpoint takes its own type, or a Bundle).
FHIR_RESOURCE = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string", "minLength": 1}},
    "additionalProperties": True,
}

#: ``POST /api/v1/fhir/<Resource>`` (DiagnosticReport, Patient, Practitioner, a Bundle): a resource in,
#: a FHIR resource out (an OperationOutcome, or for a Bundle its response Bundle); errors are
#: OperationOutcomes. The example is a DiagnosticReport.
fhir_resource_schema = extend_schema(
    request={"application/fhir+json": FHIR_RESOURCE, "application/json": FHIR_RESOURCE},
    responses={
        200: OpenApiResponse(
            FHIR_RESOURCE, description="already stored (same content), or a Bundle's answer"
        ),
        201: OpenApiResponse(FHIR_RESOURCE, description="stored"),
        **{
            code: OpenApiResponse(OPERATION_OUTCOME, description=what)
            for code, what in [
                (400, "refused: the outcome says why"),
                (409, "conflicts with the stored record"),
                (413, "too large"),
                (415, "not application/fhir+json"),
            ]
        },
    },
    examples=[
        OpenApiExample(
            "A final signed report (DiagnosticReport)",
            value=_FHIR_EXAMPLE,
            request_only=True,
        )
    ],
)

#: ``POST /api/v1/hl7``: an HL7 v2 ORU^R01 message as ER7 text (segments end in CR), an ACK out.
hl7_message_schema = extend_schema(
    request={
        "text/plain": {
            "type": "string",
            "minLength": 1,
            "description": "HL7 v2 ER7, segments separated by CR",
        },
        "x-application/hl7-v2+er7": {"type": "string", "minLength": 1},
    },
    responses={
        code: OpenApiResponse(description=f"HL7 ACK ({ack})")
        for code, ack in [
            (200, "AA: accepted"),
            (400, "AR/AE: refused, ERR says why"),
            (401, "AR: no or unknown credentials"),
            (403, "AR: not allowed"),
            (409, "AE: contradicts a stored report"),
            (503, "AE: the record store is unavailable; resend later (Retry-After)"),
        ]
    },
    examples=[OpenApiExample("A final CT report", value=_HL7_EXAMPLE, request_only=True)],
)


#: ``POST /api/v1/dicom``: one DICOM Part 10 file as multipart ``file``; what it stored out.
dicom_upload_schema = extend_schema(
    request={
        "multipart/form-data": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {
                    "type": "string",
                    "format": "binary",
                    "description": "A DICOM Part 10 file (128-byte preamble, 'DICM', then the data set)",
                }
            },
        }
    },
    responses={200: {"type": "object"}, 201: {"type": "object"}},
)
