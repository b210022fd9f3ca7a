"""Patients and practitioners in FHIR R4: the subject and the signer of a report, however they are named.

A DiagnosticReport names its subject and its ``resultsInterpreter`` in one of four ways, all read here:

* a contained resource (``"#p1"``);
* a literal reference (``"Patient/123"``, ``"Practitioner/abc"``, an absolute URL ending in one, or a
  ``urn:uuid:`` full URL of another entry of the same Bundle), resolved by the caller's ``resolve``
  (the Bundle's entries first, then resources posted earlier);
* a logical reference, ``Reference.identifier`` (an MRN for the patient; a system and value for the
  practitioner);
* for the practitioner only, nothing else: a display name alone does not identify anybody, so it is
  refused.

A practitioner's key is (``Identifier.system``, ``Identifier.value``) of its first identifier with a
value. ``urn:concordance:username`` names a portal account (the authority ``portal``); an identifier
without a system is taken under the authority ``unspecified``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner

from portal.records.ingest.fhir_common import MAX_BODY_BYTES, load_json, short, validate
from portal.records.ingest.payloads import (
    MALFORMED,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MISSING_FIELD,
    NOT_FOUND,
    UNSUPPORTED,
    AdapterError,
    ClinicianPayload,
    PatientPayload,
)

__all__ = [
    "Resolver",
    "interpreter",
    "literal_reference",
    "parse_patient",
    "parse_practitioner",
    "patient_payload",
    "practitioner_payload",
    "subject",
]

# (resource type, reference as sent) -> the payload it names, or None when it names nothing known.
Resolver = Callable[[str, str], PatientPayload | ClinicianPayload | None]

USERNAME_SYSTEM = "urn:concordance:username"
PORTAL_AUTHORITY = "portal"
UNSPECIFIED_AUTHORITY = "unspecified"
MAX_AUTHORITY_CHARS = 200
_GENDER = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
_LITERAL = re.compile(r"(?:^|/)(Patient|Practitioner)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_ANY_TYPE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


def literal_reference(reference: str) -> tuple[str, str] | None:
    """``"Patient/123"`` or ``"https://ehr/fhir/Patient/123"`` -> ``("Patient", "123")``; else None."""
    match = _LITERAL.search(reference)
    return (match.group(1), match.group(2)) if match else None


def _check_type(resource: Any, resource_type: str, location: str) -> None:
    if resource.get_resource_type() != resource_type:
        raise AdapterError(UNSUPPORTED, f"must be a {resource_type}", location)


def patient_payload(resource: Patient, location: str) -> PatientPayload:
    """A Patient resource as a payload: MRN from the identifier typed ``MR``, else the first one."""
    _check_type(resource, "Patient", location)
    identifiers = resource.identifier or []
    typed = [i for i in identifiers if i.type and any((c.code or "") == "MR" for c in i.type.coding or [])]
    chosen = next((i for i in typed + identifiers if i.value), None)
    mrn = short(chosen.value if chosen else "", f"{location}.identifier", MAX_ID_CHARS)
    if not mrn:
        raise AdapterError(
            MISSING_FIELD, "the Patient must carry an identifier (MRN)", f"{location}.identifier"
        )
    name = (resource.name or [None])[0]
    return PatientPayload(
        mrn=mrn,
        family_name=short(name.family if name else "", f"{location}.name", MAX_NAME_CHARS),
        given_name=short((name.given or [""])[0] if name else "", f"{location}.name", MAX_NAME_CHARS),
        birth_date=resource.birthDate if isinstance(resource.birthDate, date) else None,
        sex=_GENDER.get(resource.gender or "unknown", "U"),
    )


def _clinician_key(identifier: Any, location: str) -> tuple[str, str]:
    system = (identifier.system or "").strip()
    authority = PORTAL_AUTHORITY if system == USERNAME_SYSTEM else system or UNSPECIFIED_AUTHORITY
    value = short(identifier.value, f"{location}.value", MAX_ID_CHARS)
    if not value:
        raise AdapterError(MISSING_FIELD, "the practitioner identifier needs a value", f"{location}.value")
    # Portal usernames are case-insensitive; provider numbers are kept exactly as sent.
    return short(authority, f"{location}.system", MAX_AUTHORITY_CHARS), (
        value.lower() if authority == PORTAL_AUTHORITY else value
    )


def practitioner_payload(resource: Practitioner, location: str) -> ClinicianPayload:
    """A Practitioner resource as a clinician: its first identifier with a value is its key."""
    _check_type(resource, "Practitioner", location)
    identifier = next((i for i in resource.identifier or [] if i.value), None)
    if identifier is None:
        raise AdapterError(
            MISSING_FIELD, "the Practitioner must carry an identifier", f"{location}.identifier"
        )
    authority, value = _clinician_key(identifier, f"{location}.identifier")
    name = (resource.name or [None])[0]
    given = list(name.given or []) if name else []
    return ClinicianPayload(
        authority=authority,
        identifier=value,
        family_name=short(name.family if name else "", f"{location}.name", MAX_NAME_CHARS),
        given_name=short(given[0] if given else "", f"{location}.name", MAX_NAME_CHARS),
        middle_name=short(" ".join(given[1:]), f"{location}.name", MAX_NAME_CHARS),
        prefix=short(" ".join(name.prefix or []) if name else "", f"{location}.name", 32),
        suffix=short(" ".join(name.suffix or []) if name else "", f"{location}.name", 32),
    )


def _by_reference(
    reference: Any, contained: dict[str, Any], resource_type: str, resolve: Resolver | None, location: str
) -> PatientPayload | ClinicianPayload | None:
    """The payload a ``Reference`` names by ``"#id"`` or literally; None when it has no ``reference``."""
    ref = (getattr(reference, "reference", None) or "").strip()
    typed = _ANY_TYPE.search(ref) if not ref.startswith(("#", "urn:")) else None
    declared = getattr(reference, "type", None) or (typed.group(1) if typed else "")
    if declared and declared != resource_type:
        raise AdapterError(UNSUPPORTED, f"must reference a {resource_type}", location)
    if not ref:
        return None
    if ref.startswith("#"):
        resource = contained.get(ref[1:])
        if resource is None or resource.get_resource_type() != resource_type:
            raise AdapterError(MALFORMED, f"names a contained {resource_type} that is not there", location)
        convert = patient_payload if resource_type == "Patient" else practitioner_payload
        return convert(resource, f"{location}.resolve()")
    found = resolve(resource_type, ref) if resolve is not None else None
    has_identifier = getattr(reference, "identifier", None) is not None
    if found is None and not has_identifier:
        # With an identifier beside it, an unknown literal reference is no obstacle: the
        # identifier names the patient (or practitioner) on its own.
        raise AdapterError(
            NOT_FOUND,
            f"references a {resource_type} that is neither in this Bundle nor posted before",
            location,
        )
    return found


def subject(report: Any, contained: dict[str, Any], resolve: Resolver | None) -> PatientPayload:
    """The report's patient: contained, literal reference, or identifier (MRN)."""
    location = "DiagnosticReport.subject"
    reference = report.subject
    if reference is None:
        raise AdapterError(MISSING_FIELD, "subject (the patient) is required", location)
    found = _by_reference(reference, contained, "Patient", resolve, location)
    if isinstance(found, PatientPayload):
        return found
    mrn = short(
        reference.identifier.value if reference.identifier else "", f"{location}.identifier", MAX_ID_CHARS
    )
    if not mrn:
        raise AdapterError(
            MISSING_FIELD,
            "subject must reference a Patient (contained, literal or posted before) or carry an identifier",
            location,
        )
    return PatientPayload(mrn=mrn, family_name="", given_name="", birth_date=None, sex="U")


def interpreter(report: Any, contained: dict[str, Any], resolve: Resolver | None) -> ClinicianPayload:
    """Who signed the report: ``resultsInterpreter[0]`` (else a Practitioner ``performer``)."""
    candidates = [("resultsInterpreter", r) for r in (report.resultsInterpreter or [])[:1]]
    candidates += [
        ("performer", p)
        for p in report.performer or []
        if (p.type or "") == "Practitioner" or (p.reference or "").startswith(("Practitioner/", "#"))
    ][:1]
    for element, reference in candidates:
        location = f"DiagnosticReport.{element}[0]"
        found = _by_reference(reference, contained, "Practitioner", resolve, location)
        if isinstance(found, ClinicianPayload):
            return found
        if reference.identifier is not None and reference.identifier.value:
            authority, value = _clinician_key(reference.identifier, f"{location}.identifier")
            return ClinicianPayload(authority=authority, identifier=value)
    raise AdapterError(
        MISSING_FIELD,
        "resultsInterpreter must reference a Practitioner (contained, literal or posted before) "
        "or carry its identifier",
        "DiagnosticReport.resultsInterpreter",
    )


def parse_patient(body: bytes | str | dict, *, max_bytes: int = MAX_BODY_BYTES) -> PatientPayload:
    """A posted Patient resource (JSON) as a payload; :class:`AdapterError` for anything refused."""
    return patient_payload(_resource(body, max_bytes, Patient, "Patient"), "Patient")


def parse_practitioner(body: bytes | str | dict, *, max_bytes: int = MAX_BODY_BYTES) -> ClinicianPayload:
    """A posted Practitioner resource (JSON) as a clinician payload."""
    return practitioner_payload(_resource(body, max_bytes, Practitioner, "Practitioner"), "Practitioner")


def _resource(body: bytes | str | dict, max_bytes: int, model: Any, resource_type: str) -> Any:
    data = load_json(body, max_bytes)
    if not isinstance(data, dict):
        raise AdapterError(MALFORMED, "body must be a JSON object", "")
    if data.get("resourceType") != resource_type:
        raise AdapterError(UNSUPPORTED, f"only {resource_type} resources are accepted here", "resourceType")
    try:
        return validate(model, data, resource_type)
    except AdapterError:
        raise
    except (ValueError, TypeError, AttributeError, RecursionError):
        raise AdapterError(MALFORMED, f"{resource_type} could not be interpreted", resource_type) from None
