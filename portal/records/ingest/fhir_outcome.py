"""Adapter and service errors rendered as a FHIR R4 OperationOutcome."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome

from portal.records.ingest.payloads import (
    CONFLICT,
    DUPLICATE,
    INVALID_VALUE,
    MALFORMED,
    MISSING_FIELD,
    NOT_FOUND,
    TOO_LARGE,
    UNSUPPORTED,
    AdapterError,
)

__all__ = ["ISSUE_CODES", "operation_outcome"]

# AdapterError.code -> FHIR R4 IssueType code (http://hl7.org/fhir/issue-type).
ISSUE_CODES: dict[str, str] = {
    MALFORMED: "invalid",
    MISSING_FIELD: "required",
    INVALID_VALUE: "value",
    UNSUPPORTED: "not-supported",
    TOO_LARGE: "too-long",
    CONFLICT: "conflict",
    DUPLICATE: "duplicate",
    NOT_FOUND: "not-found",
    # Codes of the record services' own errors (``portal.core.errors``) end up here too.
    "invalid": "invalid",
    "unavailable": "transient",
}

# --- errors out ---------------------------------------------------------------------------------
_SEVERITIES = frozenset({"fatal", "error", "warning", "information"})


def operation_outcome(errors: list[AdapterError] | AdapterError, *, severity: str = "error") -> dict:
    """Render adapter (or service) errors as a FHIR R4 OperationOutcome, as a JSON-ready dict.

    Each error becomes one ``issue``: ``code`` from :data:`ISSUE_CODES` (``processing`` for codes
    it does not know; ``structure`` for a body that is not JSON at all), ``diagnostics`` the error
    message, ``expression`` the location when there is one. An empty list gives a single
    informational issue, because an OperationOutcome must have at least one. The result is
    validated with ``fhir.resources.R4B`` before it is returned.
    """
    if severity not in _SEVERITIES:
        raise ValueError(f"severity must be one of {sorted(_SEVERITIES)}")
    items = [errors] if isinstance(errors, AdapterError) else list(errors)
    issues: list[dict[str, Any]] = []
    for error in items:
        code = ISSUE_CODES.get(error.code, "processing")
        if error.code == MALFORMED and not error.location:
            code = "structure"
        issue: dict[str, Any] = {
            "severity": severity,
            "code": code,
            "diagnostics": error.message or error.code,
        }
        if error.location:
            issue["expression"] = [error.location]
        issues.append(issue)
    if not issues:
        issues.append({"severity": "information", "code": "informational", "diagnostics": "No errors."})
    outcome = {"resourceType": "OperationOutcome", "issue": issues}
    OperationOutcome.model_validate(outcome)
    return outcome
