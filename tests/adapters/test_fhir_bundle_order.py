"""Transaction Bundles that share new patients insert them in one order (no deadlock between them)."""

from __future__ import annotations

import json

from portal.records.ingest.fhir_bundle import parse_bundle


def _patient(mrn: str) -> dict:
    return {
        "resource": {"resourceType": "Patient", "identifier": [{"value": mrn}]},
        "request": {"method": "POST", "url": "Patient"},
    }


def _report() -> dict:
    return {
        "resource": {"resourceType": "DiagnosticReport"},
        "request": {"method": "POST", "url": "DiagnosticReport"},
    }


def _order(entries: list[dict]) -> list[tuple[str, str]]:
    body = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    _, parsed = parse_bundle(body)
    return [(e.resource_type, json.dumps(e.resource.get("identifier"))) for e in parsed]


def test_patients_are_processed_by_identifier_whatever_order_they_were_sent_in():
    one = _order([_report(), _patient("MRN2"), _patient("MRN1"), _patient("MRN3")])
    other = _order([_patient("MRN3"), _patient("MRN1"), _report(), _patient("MRN2")])

    assert one == other
    assert [kind for kind, _ in one] == ["Patient", "Patient", "Patient", "DiagnosticReport"]
    assert [identifier for _, identifier in one[:3]] == [
        json.dumps([{"value": mrn}]) for mrn in ("MRN1", "MRN2", "MRN3")
    ]


def test_reports_keep_the_order_they_were_sent_in():
    reports = [dict(_report(), fullUrl=f"urn:uuid:{n}") for n in range(3)]
    _, parsed = parse_bundle(json.dumps({"resourceType": "Bundle", "type": "batch", "entry": reports[::-1]}))

    assert [e.full_url for e in parsed] == ["urn:uuid:2", "urn:uuid:1", "urn:uuid:0"]
