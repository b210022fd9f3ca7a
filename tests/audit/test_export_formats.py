"""FHIR R4 AuditEvent, ATNA (DICOM PS3.15 A.5) and syslog framing of audit events, and export_audit."""

from __future__ import annotations

import base64
import io
import json
import xml.etree.ElementTree as ET  # noqa: S405 - parsing our own output in tests
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle as FhirBundle

from audit import log
from audit.interop import DCM, atna_message, fhir_audit_event, fhir_bundle, syslog_frame
from audit.models import AuditEvent

HOSTILE = '<script>alert("x")</script>&\x01'


def _record(action: str, *, actor=None, context=log.SYSTEM, **fields) -> AuditEvent:  # noqa: ANN001
    with transaction.atomic():
        return log.record(action, actor=actor, context=context, **fields)


def _web(address: str = "10.1.2.3", agent: str = "Mozilla/5.0") -> log.AuditContext:
    return log.AuditContext(client_address=address, user_agent=agent, channel="GET /studies/7")


# (action, fields, expected DICOM type code, CRUDE action, outcome)
FAMILIES = [
    (
        "study.create",
        {"object_type": "study", "object_id": 7, "patient_id": 3, "study_id": 7},
        "110110",
        "C",
        "0",
    ),
    (
        "study.view",
        {"object_type": "study", "object_id": 7, "patient_id": 3, "study_id": 7},
        "110110",
        "R",
        "0",
    ),
    ("study.list", {"object_type": "study"}, "110112", "R", "0"),
    (
        "signed_report.final",
        {"object_type": "signed_report", "object_id": 9, "patient_id": 3},
        "110110",
        "U",
        "0",
    ),
    ("auth.login", {}, "110114", "E", "0"),
    ("auth.login_failed", {}, "110114", "E", "4"),
    ("access.denied", {"object_type": "study", "object_id": 7}, "110113", "E", "4"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "fields", "code", "crude", "outcome"), FAMILIES)
def test_fhir_audit_event_validates_for_each_action_family(personas, action, fields, code, crude, outcome):
    event = _record(action, actor=personas["alice"], context=_web(), **fields)

    resource = fhir_audit_event(event)

    parsed = FhirAuditEvent(**resource)
    assert parsed.type.system == DCM and parsed.type.code == code
    assert resource["action"] == crude and resource["outcome"] == outcome
    assert resource["subtype"][-1]["code"] == action
    agent = resource["agent"][0]
    assert agent["who"]["display"] == "alice" and agent["requestor"] is True
    assert agent["network"] == {"address": "10.1.2.3", "type": "2"}
    assert resource["source"]["observer"]["display"] == "Concordance"
    assert resource["source"]["type"][0]["code"] == "4"
    log_entry = {d["type"]: d["valueString"] for d in resource["entity"][-1]["detail"]}
    assert log_entry["seq"] == str(event.seq) and log_entry["leaf_hash"] == event.leaf_hash
    json.dumps(resource)  # plain JSON, ready to serialise


@pytest.mark.django_db
def test_fhir_entities_name_the_object_and_the_patient():
    event = _record("study.view", object_type="study", object_id=7, patient_id=3, study_id=7)

    resource = fhir_audit_event(event)

    assert resource["entity"][0]["what"]["identifier"]["value"] == "study/7"
    assert resource["entity"][1]["what"]["reference"] == "Patient/3"
    assert resource["agent"][0]["who"]["display"] == "system"
    assert "network" not in resource["agent"][0]
    assert resource["recorded"].endswith("Z")


@pytest.mark.django_db
def test_login_subtype_is_the_dicom_login_code(personas):
    resource = fhir_audit_event(_record("auth.login", actor=personas["otto"]))
    assert resource["subtype"][0] == {"system": DCM, "code": "110122", "display": "Login"}


@pytest.mark.django_db
def test_fhir_bundle_is_a_valid_collection(personas):
    events = [
        _record("study.create", actor=personas["ris"], object_type="study", object_id=1, patient_id=2),
        _record("auth.login_failed", context=_web()),
    ]

    bundle = fhir_bundle(events)

    parsed = FhirBundle(**bundle)
    assert parsed.type == "collection"
    assert [entry["resource"]["id"] for entry in bundle["entry"]] == [f"concordance-{e.seq}" for e in events]


@pytest.mark.django_db
def test_atna_message_parses_back_with_the_right_codes(personas):
    event = _record(
        "study.view", actor=personas["bob"], context=_web(), object_type="study", object_id=7, patient_id=3
    )

    root = ET.fromstring(atna_message(event))  # noqa: S314 - our own output

    assert root.tag == "AuditMessage"
    ident = root.find("EventIdentification")
    assert ident.get("EventActionCode") == "R" and ident.get("EventOutcomeIndicator") == "0"
    assert ident.get("EventDateTime").endswith("Z")
    event_id = ident.find("EventID")
    assert (event_id.get("csd-code"), event_id.get("codeSystemName")) == ("110110", "DCM")
    participant = root.find("ActiveParticipant")
    assert participant.get("UserID") == "bob" and participant.get("UserIsRequestor") == "true"
    assert participant.get("NetworkAccessPointID") == "10.1.2.3"
    assert participant.get("NetworkAccessPointTypeCode") == "2"
    assert root.find("AuditSourceIdentification").get("AuditSourceID") == "Concordance"
    objects = [o.get("ParticipantObjectID") for o in root.findall("ParticipantObjectIdentification")]
    assert objects == ["study/7", "Patient/3", f"AuditEvent/{event.seq}"]
    details = {
        d.get("type"): base64.b64decode(d.get("value")).decode() for d in root.iter("ParticipantObjectDetail")
    }
    assert details["leaf_hash"] == event.leaf_hash and details["seq"] == str(event.seq)


@pytest.mark.django_db
def test_atna_denial_is_a_security_alert_with_minor_failure():
    root = ET.fromstring(atna_message(_record("access.denied", object_type="study", object_id=1)))  # noqa: S314
    ident = root.find("EventIdentification")
    assert ident.find("EventID").get("csd-code") == "110113"
    assert ident.get("EventOutcomeIndicator") == "4"
    assert root.find("ActiveParticipant").get("NetworkAccessPointID") is None


@pytest.mark.django_db
def test_atna_escapes_hostile_usernames_and_user_agents():
    from tests.conftest import make_user

    mallory = make_user(HOSTILE.replace("\x01", "")[:150], None)
    event = _record("auth.login", actor=mallory, context=_web(agent=HOSTILE + "\nline two"))

    text = atna_message(event)

    assert "<script>" not in text and "\n" not in text
    root = ET.fromstring(text)  # noqa: S314 - it must still parse: escaping, and the control char replaced
    assert root.find("ActiveParticipant").get("UserID") == mallory.username
    agents = [d.get("value") for d in root.iter("ParticipantObjectDetail") if d.get("type") == "user_agent"]
    assert base64.b64decode(agents[0]).decode() == HOSTILE + "\nline two"
    # The FHIR form carries the same strings as JSON and still validates.
    assert fhir_audit_event(event)["agent"][0]["who"]["display"] == mallory.username


def test_syslog_frame_is_octet_counted_rfc5424():
    frame = syslog_frame("<AuditMessage>é</AuditMessage>", hostname="portal host")

    length, _, record = frame.partition(b" ")
    assert int(length) == len(record)
    assert record.startswith(b"<85>1 ")
    fields = record.split(b" ", 7)
    assert fields[2:7] == [b"portalhost", b"concordance", b"-", b"IHE+RFC-3881", b"-"]
    assert fields[7] == b"\xef\xbb\xbf" + "<AuditMessage>é</AuditMessage>".encode()


# --- export_audit ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_fhir_writes_a_valid_bundle(tmp_path: Path, personas):
    for i in range(5):
        _record("study.view", actor=personas["alice"], object_type="study", object_id=i, patient_id=i)
    out = tmp_path / "export" / "audit.json"

    call_command("export_audit", "--format", "fhir", "--from-seq", "1", "--to-seq", "3", "--out", str(out))

    bundle = json.loads(out.read_text(encoding="utf-8"))
    FhirBundle(**bundle)
    assert [e["resource"]["id"] for e in bundle["entry"]] == [
        "concordance-1",
        "concordance-2",
        "concordance-3",
    ]
    assert not [p for p in out.parent.iterdir() if p.name != "audit.json"]  # no temporary left behind


@pytest.mark.django_db
def test_export_fhir_of_an_empty_range_is_a_valid_empty_bundle(tmp_path: Path):
    out = tmp_path / "audit.json"
    call_command("export_audit", "--format", "fhir", "--out", str(out))
    assert json.loads(out.read_text(encoding="utf-8"))["entry"] == []


@pytest.mark.django_db
def test_export_atna_writes_one_xml_document_per_line(tmp_path: Path):
    seqs = [_record("study.create", object_type="study", object_id=i, patient_id=i).seq for i in range(3)]
    _record("auth.login_failed", context=_web(agent=HOSTILE))
    out = tmp_path / "audit.xml"

    call_command("export_audit", "--format", "atna", "--out", str(out))

    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    roots = [ET.fromstring(line) for line in lines]  # noqa: S314
    ids = [r.findall("ParticipantObjectIdentification")[-1].get("ParticipantObjectID") for r in roots]
    assert ids == [f"AuditEvent/{s}" for s in [*seqs, seqs[-1] + 1]]


@pytest.mark.django_db
def test_export_rejects_an_inverted_range(tmp_path: Path):
    with pytest.raises(CommandError, match="after"):
        call_command("export_audit", "--format", "atna", "--from-seq", "5", "--to-seq", "2")


@pytest.mark.django_db
def test_export_to_standard_output_is_valid_json():
    _record("study.view", object_type="study", object_id=1, patient_id=1)
    _record("study.view", object_type="study", object_id=2, patient_id=2)
    out = io.StringIO()

    call_command("export_audit", "--format", "fhir", stdout=out, stderr=io.StringIO())

    assert len(FhirBundle(**json.loads(out.getvalue())).entry) == 2
