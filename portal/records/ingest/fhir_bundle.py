"""FHIR R4 Bundles of type ``transaction`` or ``batch``: entries in, a ``*-response`` Bundle out.

What is accepted: ``Bundle.type`` ``transaction`` or ``batch``; at most :data:`MAX_ENTRIES` entries,
each with a ``resource`` and a ``request`` whose method is ``POST`` or ``PUT`` and whose url names
the resource type (``"DiagnosticReport"``, ``"Patient/123"``). Patients and Practitioners are
processed before the reports that reference them (the FHIR transaction processing order puts
creates and updates of referenced resources first too), in the order of their identifiers, and a
report's literal references (``urn:uuid:...`` full URLs or ``"Patient/123"``) are resolved against
the Bundle's entries before anything posted earlier. The response Bundle lists the entries in the
order they were sent, each with ``response.status`` (``"201 Created"``), ``location`` and, for a
refused entry, an ``outcome``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner

from portal.records.ingest.fhir_common import MAX_BODY_BYTES, load_json, validate
from portal.records.ingest.fhir_people import (
    Resolver,
    literal_reference,
    patient_payload,
    practitioner_payload,
)
from portal.records.ingest.payloads import (
    MALFORMED,
    MISSING_FIELD,
    TOO_LARGE,
    UNSUPPORTED,
    AdapterError,
    ClinicianPayload,
    PatientPayload,
)

__all__ = [
    "MAX_ENTRIES",
    "BundleEntry",
    "Parsed",
    "bundle_resolver",
    "entry_payload",
    "parse_bundle",
    "response_bundle",
]

MAX_ENTRIES = 1000
ACCEPTED_TYPES = ("Patient", "Practitioner", "DiagnosticReport")
# Referenced resources first, then the reports (stable within each group).
_ORDER = {"Patient": 0, "Practitioner": 0, "DiagnosticReport": 1}
_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    413: "Too Large",
}


@dataclass(frozen=True)
class BundleEntry:
    """One entry of a Bundle: its position, full URL, request and resource (still JSON)."""

    index: int
    full_url: str
    method: str
    url: str
    resource_type: str
    resource: dict

    @property
    def location(self) -> str:
        """Where errors about this entry point, in FHIRPath."""
        return f"Bundle.entry[{self.index}]"

    @property
    def client_id(self) -> str:
        """The logical id a ``PUT Patient/123`` assigns ("" for a POST: the server assigns it)."""
        parts = self.url.split("/")
        return parts[1] if self.method == "PUT" and len(parts) == 2 else ""


def parse_bundle(
    body: bytes | str | dict, *, max_bytes: int = MAX_BODY_BYTES
) -> tuple[str, list[BundleEntry]]:
    """The Bundle's type and its entries, in processing order; :class:`AdapterError` when refused whole."""
    data = load_json(body, max_bytes)
    if not isinstance(data, dict):
        raise AdapterError(MALFORMED, "body must be a JSON object", "")
    if data.get("resourceType") != "Bundle":
        raise AdapterError(UNSUPPORTED, "only Bundle resources are accepted at the base URL", "resourceType")
    bundle_type = data.get("type")
    if bundle_type not in ("transaction", "batch"):
        raise AdapterError(UNSUPPORTED, "only transaction and batch Bundles are accepted", "Bundle.type")
    raw_entries = data.get("entry") or []
    if not isinstance(raw_entries, list):
        raise AdapterError(MALFORMED, "entry must be a list", "Bundle.entry")
    if len(raw_entries) > MAX_ENTRIES:
        raise AdapterError(TOO_LARGE, f"a Bundle may carry at most {MAX_ENTRIES} entries", "Bundle.entry")
    entries = [_entry(index, raw) for index, raw in enumerate(raw_entries)]
    return bundle_type, sorted(entries, key=_processing_order)


def _processing_order(entry: BundleEntry) -> tuple[int, str, int]:
    """Patients and Practitioners first, ordered by their identifiers; then the reports as sent.

    Two transaction Bundles that create the same new patients must insert them in the same order, or
    each waits for a row the other inserted first (a deadlock, seen in bench/ingest.py with 4 clients):
    ordering by the identifiers as sent gives every Bundle of a feed the same order.
    """
    group = _ORDER.get(entry.resource_type, 2)
    if group != 0:
        return group, "", entry.index
    identifiers = json.dumps(entry.resource.get("identifier"), sort_keys=True, separators=(",", ":"))
    return group, f"{entry.resource_type}:{identifiers}", entry.index


def _entry(index: int, raw: Any) -> BundleEntry:
    location = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise AdapterError(MALFORMED, "an entry must be an object", location)
    resource, request = raw.get("resource"), raw.get("request")
    if not isinstance(resource, dict):
        raise AdapterError(MISSING_FIELD, "entry.resource is required", f"{location}.resource")
    if not isinstance(request, dict):
        raise AdapterError(MISSING_FIELD, "entry.request is required", f"{location}.request")
    method, url = str(request.get("method") or "").upper(), str(request.get("url") or "").strip()
    resource_type = str(resource.get("resourceType") or "")
    if method not in ("POST", "PUT"):
        raise AdapterError(
            UNSUPPORTED, "only POST and PUT entries are accepted", f"{location}.request.method"
        )
    if url.split("/")[0].split("?")[0] != resource_type:
        raise AdapterError(MALFORMED, "request.url must name the resource's type", f"{location}.request.url")
    full_url = raw.get("fullUrl")
    return BundleEntry(
        index=index,
        full_url=full_url.strip() if isinstance(full_url, str) else "",
        method=method,
        url=url,
        resource_type=resource_type,
        resource=resource,
    )


# A Bundle's Patient and Practitioner payloads by entry index, each validated once however many
# reports name it (a refusal is not kept: it is raised again).
Parsed = dict[int, PatientPayload | ClinicianPayload]


def entry_payload(entry: BundleEntry, parsed: Parsed | None = None) -> PatientPayload | ClinicianPayload:
    """A Patient or Practitioner entry's resource, validated, as a payload (kept in ``parsed``)."""
    if parsed is not None and entry.index in parsed:
        return parsed[entry.index]
    location = f"{entry.location}.resource"
    if entry.resource_type == "Patient":
        payload = patient_payload(validate(Patient, entry.resource, location), location)
    else:
        payload = practitioner_payload(validate(Practitioner, entry.resource, location), location)
    if parsed is not None:
        parsed[entry.index] = payload
    return payload


def bundle_resolver(
    entries: list[BundleEntry], fallback: Resolver | None, parsed: Parsed | None = None
) -> Resolver:
    """Resolve references against the Bundle's Patient/Practitioner entries, then ``fallback``
    (the entries' payloads kept in ``parsed``)."""
    by_reference: dict[tuple[str, str], BundleEntry] = {}
    for entry in entries:
        if entry.resource_type not in ("Patient", "Practitioner"):
            continue
        if entry.full_url:
            by_reference[(entry.resource_type, entry.full_url)] = entry
        for logical_id in {entry.client_id, str(entry.resource.get("id") or "")} - {""}:
            by_reference[(entry.resource_type, f"{entry.resource_type}/{logical_id}")] = entry

    payloads: Parsed = {} if parsed is None else parsed

    def resolve(resource_type: str, reference: str) -> PatientPayload | ClinicianPayload | None:
        literal = literal_reference(reference)
        key = f"{literal[0]}/{literal[1]}" if literal else reference
        entry = by_reference.get((resource_type, reference)) or by_reference.get((resource_type, key))
        if entry is not None:
            return entry_payload(entry, payloads)
        return fallback(resource_type, reference) if fallback is not None else None

    return resolve


def response_entry(status: int, *, location: str = "", outcome: dict | None = None) -> dict:
    """One ``Bundle.entry`` of a response: ``response.status`` as ``"201 Created"``, location, outcome."""
    response: dict[str, Any] = {"status": f"{status} {_REASONS.get(status, '')}".strip()}
    if location:
        response["location"] = location
    if outcome is not None:
        response["outcome"] = outcome
    return {"response": response}


def response_bundle(bundle_type: str, entries: list[dict]) -> dict:
    """A ``transaction-response`` or ``batch-response`` Bundle over the given response entries."""
    return {"resourceType": "Bundle", "type": f"{bundle_type}-response", "entry": entries}
