"""AI drafts sent as FHIR: a preliminary DiagnosticReport whose model is named by an extension or Device.

See :mod:`portal.records.ingest.fhir` for the conventions; the extension URLs are defined here.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from portal.records.ingest.fhir_common import short as _short
from portal.records.ingest.payloads import (
    AI_OUTPUT_KINDS,
    INVALID_VALUE,
    MALFORMED,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MISSING_FIELD,
    AdapterError,
    AIOutputPayload,
)

__all__ = [
    "AI_COMPLETION_TOKENS_URL",
    "AI_INPUTS_URL",
    "AI_KIND_URL",
    "AI_LATENCY_URL",
    "AI_MODEL_URL",
    "AI_PROMPT_TOKENS_URL",
    "AI_SETTINGS_URL",
    "REPLACES_URL",
    "ai_output",
    "extension_value",
]

_ROOT = "DiagnosticReport"
_EXT = "http://concordance.local/fhir/StructureDefinition/"
AI_MODEL_URL = _EXT + "ai-model"
AI_KIND_URL = _EXT + "ai-kind"
AI_INPUTS_URL = _EXT + "ai-inputs"
AI_SETTINGS_URL = _EXT + "ai-generation-settings"
AI_PROMPT_TOKENS_URL = _EXT + "ai-prompt-tokens"
AI_COMPLETION_TOKENS_URL = _EXT + "ai-completion-tokens"
AI_LATENCY_URL = _EXT + "ai-latency-ms"
REPLACES_URL = _EXT + "replaces"


def _extensions(report: DiagnosticReport, url: str) -> list[Any]:
    return [ext for ext in report.extension or [] if ext.url == url]


def extension_value(report: DiagnosticReport, url: str, *kinds: str) -> tuple[Any, str] | None:
    """The first value of extension ``url`` among ``kinds`` (e.g. ``valueString``), with a location."""
    for ext in _extensions(report, url):
        for kind in kinds:
            value = getattr(ext, kind, None)
            if value is not None:
                return value, f"{_ROOT}.extension('{url.rsplit('/', 1)[-1]}').{kind}"
    return None


def _json_object(report: DiagnosticReport, url: str) -> dict:
    found = extension_value(report, url, "valueString")
    if found is None:
        return {}
    value, location = found
    try:
        obj = json.loads(value, parse_constant=lambda name: math.nan)
    except (ValueError, RecursionError):
        raise AdapterError(MALFORMED, "extension must hold a JSON object", location) from None
    if not isinstance(obj, dict):
        raise AdapterError(MALFORMED, "extension must hold a JSON object", location)
    if "NaN" in value or "Infinity" in value:
        _reject_non_finite(obj, location)
    return obj


def _reject_non_finite(obj: Any, location: str) -> None:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise AdapterError(MALFORMED, "JSON numbers must be finite", location)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _count(report: DiagnosticReport, url: str) -> int | None:
    found = extension_value(report, url, "valueInteger", "valueUnsignedInt", "valuePositiveInt")
    if found is None:
        return None
    value, location = found
    if int(value) < 0:
        raise AdapterError(MALFORMED, "count must not be negative", location)
    return int(value)


def _model(report: DiagnosticReport) -> tuple[str, str]:
    found = extension_value(report, AI_MODEL_URL, "valueString")
    if found is not None:
        value, location = found
        name, sep, version = str(value).partition("|")
        if not sep or not name.strip() or not version.strip():
            raise AdapterError(MALFORMED, "ai-model must be 'name|version'", location)
        return _short(name, location, MAX_NAME_CHARS), _short(version, location, MAX_ID_CHARS)
    for index, performer in enumerate(report.performer or []):
        is_device = (performer.type or "") == "Device" or (performer.reference or "").startswith("Device/")
        display = (performer.display or "").strip()
        if is_device and display:
            location = f"{_ROOT}.performer[{index}].display"
            name, _, version = display.rpartition(" ")
            if not name.strip() or not version:
                raise AdapterError(MALFORMED, "Device display must be 'name version'", location)
            return _short(name, location, MAX_NAME_CHARS), _short(version, location, MAX_ID_CHARS)
    raise AdapterError(
        MISSING_FIELD,
        "preliminary reports are accepted only from an AI model: add the ai-model extension "
        "or a Device performer",
        f"{_ROOT}.extension",
    )


def ai_output(
    report: DiagnosticReport, accession: str, uid: str | None, text: str, issued: datetime | None
) -> AIOutputPayload:
    name, version = _model(report)
    kind = "report_draft"
    found = extension_value(report, AI_KIND_URL, "valueCode", "valueString")
    if found is not None:
        kind = str(found[0])
        if kind not in AI_OUTPUT_KINDS:
            raise AdapterError(INVALID_VALUE, "unknown AI output kind", found[1])
    latency: float | None = None
    found = extension_value(report, AI_LATENCY_URL, "valueDecimal", "valueInteger")
    if found is not None:
        latency = float(found[0])
        if not math.isfinite(latency) or latency < 0:
            raise AdapterError(MALFORMED, "latency must be a non-negative number", found[1])
    return AIOutputPayload(
        accession_number=accession,
        study_instance_uid=uid,
        kind=kind,
        model_name=name,
        model_version=version,
        inputs=_json_object(report, AI_INPUTS_URL),
        generation_settings=_json_object(report, AI_SETTINGS_URL),
        text=text,
        prompt_tokens=_count(report, AI_PROMPT_TOKENS_URL),
        completion_tokens=_count(report, AI_COMPLETION_TOKENS_URL),
        latency_ms=latency,
        generated_at=issued,
    )
