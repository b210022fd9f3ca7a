"""The audit log in the formats audit repositories speak: FHIR R4 AuditEvent and IHE ATNA over syslog.

* :func:`fhir_audit_event` / :func:`fhir_bundle` map events to FHIR R4 ``AuditEvent`` resources (checked
  against the R4B models of ``fhir.resources``, which are wire-compatible with R4 for this resource).
* :func:`atna_message` writes a DICOM PS3.15 A.5 audit message (the IHE ATNA / RFC 3881 schema).
* :func:`syslog_frame` wraps one message as an RFC 5424 syslog record framed for TCP by RFC 6587 octet
  counting, which is how ITI-20 "Record Audit Event" carries it.

Every representation carries the event's ``seq`` and ``leaf_hash``, so a record held by a repository
ties back to one leaf of the Merkle log (and a repository can dedupe redelivered records by seq).
Only references leave the portal: usernames, addresses and object/patient ids, never report text
or other PHI (``details`` is not exported, since callers may put anything JSON-serialisable there).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import xml.etree.ElementTree as ET  # noqa: S405 - we only build XML here, never parse untrusted input
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle as FhirBundle

from audit.models import ActorKind, AuditEvent

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_SOURCE_ID = "Concordance"
# Our own action names ride along as a subtype, so nothing is lost in the mapping to DICOM codes.
ACTION_SYSTEM = "urn:concordance:audit-action"
OBJECT_TYPE_SYSTEM = "urn:concordance:object-type"
ACTION_TYPE_SYSTEM = "http://hl7.org/fhir/audit-event-action"
NETWORK_TYPE_IP = "2"  # FHIR network-type / DICOM NetworkAccessPointTypeCode: 2 = IP address
SOURCE_TYPE_APPLICATION_SERVER = "4"  # FHIR audit-source-type / DICOM AuditSourceTypeCode


@dataclass(frozen=True)
class Code:
    """A coded concept: DICOM code value and its display name."""

    code: str
    display: str


PATIENT_RECORD = Code("110110", "Patient Record")
QUERY = Code("110112", "Query")
SECURITY_ALERT = Code("110113", "Security Alert")
USER_AUTHENTICATION = Code("110114", "User Authentication")
EXPORT = Code("110106", "Export")
APPLICATION_ACTIVITY = Code("110100", "Application Activity")
LOGIN = Code("110122", "Login")
LOGOUT = Code("110123", "Logout")

# The last dotted part of an action ("study.create" -> "create") decides the CRUDE action code.
_CREATE = {"create", "ingest", "upload", "import", "add"}
_READ = {"view", "read", "list", "search", "query", "download", "open"}
_UPDATE = {"update", "amend", "correct", "edit", "final", "sign", "assign", "adjudicate", "close", "reopen"}
_DELETE = {"delete", "purge", "remove", "destroy", "revoke"}
_QUERY = {"list", "search", "query"}
_FAILED = {"auth.login_failed", "access.denied"}

# XML 1.0 forbids most C0 controls even escaped; ElementTree would write them and produce a message no
# repository can parse, so they are replaced (hostile user agents are exactly where they turn up).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _verb(action: str) -> str:
    return action.rsplit(".", 1)[-1].lower()


def action_code(action: str) -> str:
    """The FHIR/DICOM event action code: C(reate), R(ead), U(pdate), D(elete) or E(xecute)."""
    verb = _verb(action)
    if verb in _CREATE:
        return "C"
    if verb in _READ:
        return "R"
    if verb in _UPDATE:
        return "U"
    if verb in _DELETE:
        return "D"
    return "E"  # logins, exports, denials, checkpoints: things done rather than records touched


def event_type(event: AuditEvent) -> tuple[Code, Code | None]:
    """The DICOM event type (EventID) and, where DICOM has one, its subtype (EventTypeCode)."""
    action = event.action
    if action.startswith("auth."):
        verb = _verb(action)
        return USER_AUTHENTICATION, LOGOUT if verb == "logout" else LOGIN
    if action == "access.denied" or action.startswith("security."):
        return SECURITY_ALERT, None
    verb = _verb(action)
    if verb == "export":
        return EXPORT, None
    if verb in _QUERY:
        return QUERY, None
    if event.patient_id is not None or event.study_id is not None or event.object_id:
        return PATIENT_RECORD, None
    return APPLICATION_ACTIVITY, None


def is_failure(event: AuditEvent) -> bool:
    """Whether the event records a refused or failed attempt (outcome 4, minor failure)."""
    return event.action in _FAILED or event.action.endswith("_failed")


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _who(event: AuditEvent) -> str:
    if event.actor_username:
        return event.actor_username
    return "system" if event.actor_kind == ActorKind.SYSTEM else event.actor_kind or "system"


# --- FHIR R4 ------------------------------------------------------------------------------------------


def fhir_audit_event(event: AuditEvent) -> dict[str, Any]:
    """The event as a FHIR R4 ``AuditEvent`` resource (a JSON-ready dict), validated before return.

    Raises ``pydantic.ValidationError`` if the mapping ever produces an invalid resource: better a loud
    export failure than a repository silently rejecting records.
    """
    etype, subtype = event_type(event)
    subtypes = [{"system": DCM, "code": subtype.code, "display": subtype.display}] if subtype else []
    subtypes.append({"system": ACTION_SYSTEM, "code": event.action, "display": event.action})

    agent: dict[str, Any] = {"who": {"display": _who(event)}, "requestor": True}
    if event.actor_id is not None:
        agent["who"]["identifier"] = {"system": "urn:concordance:user", "value": str(event.actor_id)}
    if event.client_address:
        agent["network"] = {"address": event.client_address, "type": NETWORK_TYPE_IP}

    entities: list[dict[str, Any]] = []
    if event.object_type or event.object_id:
        entities.append(
            {
                "what": {"identifier": {"value": f"{event.object_type}/{event.object_id}"}},
                "type": {"system": OBJECT_TYPE_SYSTEM, "code": event.object_type or "unknown"},
            }
        )
    if event.patient_id is not None:
        entities.append(
            {
                "what": {"reference": f"Patient/{event.patient_id}"},
                # FHIR audit-entity-type 1 = Person, object-role 1 = Patient
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
            }
        )
    log_entry = [
        {"type": "seq", "valueString": str(event.seq)},
        {"type": "leaf_hash", "valueString": event.leaf_hash},
    ]
    if event.channel:
        log_entry.append({"type": "channel", "valueString": event.channel})
    if event.user_agent:
        log_entry.append({"type": "user_agent", "valueString": event.user_agent})
    entities.append(
        {
            "what": {"identifier": {"system": "urn:concordance:audit-log", "value": str(event.seq)}},
            "name": "audit-log-entry",
            "detail": log_entry,
        }
    )

    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"concordance-{event.seq}",
        "type": {"system": DCM, "code": etype.code, "display": etype.display},
        "subtype": subtypes,
        "action": action_code(event.action),
        "recorded": _iso(event.recorded_at),
        "outcome": "4" if is_failure(event) else "0",
        "agent": [agent],
        "source": {
            "observer": {"display": AUDIT_SOURCE_ID},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": SOURCE_TYPE_APPLICATION_SERVER,
                    "display": "Application Server",
                }
            ],
        },
        "entity": entities,
    }
    FhirAuditEvent(**resource)  # validation only; the plain dict is what callers serialise
    return resource


def fhir_bundle(events: Iterable[AuditEvent]) -> dict[str, Any]:
    """A FHIR ``Bundle`` of type ``collection`` holding the events' AuditEvents, validated.

    Builds everything in memory: for whole-log exports use ``manage.py export_audit``, which streams.
    """
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": _iso(timezone.now()),
        "entry": [
            {"fullUrl": f"urn:concordance:audit-event:{event.seq}", "resource": fhir_audit_event(event)}
            for event in events
        ],
    }
    FhirBundle(**bundle)
    return bundle


# --- IHE ATNA / DICOM PS3.15 A.5 ---------------------------------------------------------------------


def _clean(value: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(value))


def _sub(parent: ET.Element, tag: str, **attributes: object) -> ET.Element:
    return ET.SubElement(parent, tag, {key: _clean(value) for key, value in attributes.items()})


def _b64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


def atna_message(event: AuditEvent) -> str:
    """The event as one DICOM PS3.15 A.5 ``AuditMessage`` (a single-line XML string).

    Built with ElementTree, so usernames and user agents are escaped; every value is an attribute, and
    ElementTree escapes newlines in attributes, which keeps one message per line in exports.
    """
    root = ET.Element("AuditMessage")
    _add_identification(root, event)
    _add_participant(root, event)
    source = _sub(root, "AuditSourceIdentification", AuditSourceID=AUDIT_SOURCE_ID)
    _sub(source, "AuditSourceTypeCode", **{"csd-code": SOURCE_TYPE_APPLICATION_SERVER})
    _add_objects(root, event)
    _add_log_entry(root, event)
    return ET.tostring(root, encoding="unicode")


def _add_identification(root: ET.Element, event: AuditEvent) -> None:
    """EventIdentification: action, time, outcome, the DICOM event type and our own action code."""
    etype, subtype = event_type(event)
    identification = _sub(
        root,
        "EventIdentification",
        EventActionCode=action_code(event.action),
        EventDateTime=_iso(event.recorded_at),
        EventOutcomeIndicator="4" if is_failure(event) else "0",
    )
    _sub(
        identification,
        "EventID",
        **{"csd-code": etype.code, "codeSystemName": "DCM"},
        originalText=etype.display,
    )
    if subtype is not None:
        _sub(
            identification,
            "EventTypeCode",
            **{"csd-code": subtype.code, "codeSystemName": "DCM"},
            originalText=subtype.display,
        )
    _sub(
        identification,
        "EventTypeCode",
        **{"csd-code": event.action, "codeSystemName": ACTION_SYSTEM},
        originalText=event.action,
    )


def _add_participant(root: ET.Element, event: AuditEvent) -> None:
    """ActiveParticipant: who acted, and from which network address."""
    participant: dict[str, object] = {"UserID": _who(event), "UserIsRequestor": "true"}
    if event.actor_id is not None:
        participant["AlternativeUserID"] = event.actor_id
    if event.client_address:
        participant["NetworkAccessPointID"] = event.client_address
        participant["NetworkAccessPointTypeCode"] = NETWORK_TYPE_IP
    _sub(root, "ActiveParticipant", **participant)


def _add_objects(root: ET.Element, event: AuditEvent) -> None:
    """ParticipantObjectIdentification of the record acted on and of the patient, when known."""
    if event.object_type or event.object_id:
        # TypeCode 2 = system object, role 4 = domain resource
        obj = _sub(
            root,
            "ParticipantObjectIdentification",
            ParticipantObjectID=f"{event.object_type}/{event.object_id}",
            ParticipantObjectTypeCode="2",
            ParticipantObjectTypeCodeRole="4",
        )
        _sub(
            obj,
            "ParticipantObjectIDTypeCode",
            **{"csd-code": event.object_type or "unknown", "codeSystemName": OBJECT_TYPE_SYSTEM},
            originalText=event.object_type or "unknown",
        )
    if event.patient_id is not None:
        # TypeCode 1 = person, role 1 = patient; IDTypeCode 2 = RFC 3881 "Patient Number"
        patient = _sub(
            root,
            "ParticipantObjectIdentification",
            ParticipantObjectID=f"Patient/{event.patient_id}",
            ParticipantObjectTypeCode="1",
            ParticipantObjectTypeCodeRole="1",
        )
        _sub(
            patient,
            "ParticipantObjectIDTypeCode",
            **{"csd-code": "2", "codeSystemName": "RFC-3881"},
            originalText="Patient Number",
        )


def _add_log_entry(root: ET.Element, event: AuditEvent) -> None:
    """The log entry itself (role 13 = security resource): ties the message to its Merkle leaf.

    Detail values are base64 as the schema requires (xs:base64Binary).
    """
    entry = _sub(
        root,
        "ParticipantObjectIdentification",
        ParticipantObjectID=f"AuditEvent/{event.seq}",
        ParticipantObjectTypeCode="2",
        ParticipantObjectTypeCodeRole="13",
    )
    _sub(
        entry,
        "ParticipantObjectIDTypeCode",
        **{"csd-code": "audit-log-entry", "codeSystemName": "urn:concordance:audit-log"},
        originalText="Audit log entry",
    )
    details = {"seq": str(event.seq), "leaf_hash": event.leaf_hash}
    if event.channel:
        details["channel"] = event.channel
    if event.user_agent:
        details["user_agent"] = event.user_agent
    for key, value in details.items():
        _sub(entry, "ParticipantObjectDetail", type=key, value=_b64(value))


# --- syslog ------------------------------------------------------------------------------------------

SYSLOG_PRI = 10 * 8 + 5  # facility authpriv (10), severity notice (5), as ITI-20 recommends
_BOM = b"\xef\xbb\xbf"


def _header_field(value: str, max_length: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, bounded, '-' when empty."""
    cleaned = "".join(ch for ch in value if 33 <= ord(ch) <= 126)[:max_length]
    return cleaned or "-"


def syslog_frame(
    message: str,
    *,
    hostname: str,
    app_name: str = "concordance",
    msgid: str = "IHE+RFC-3881",
    timestamp: dt.datetime | None = None,
) -> bytes:
    """One RFC 5424 syslog record carrying ``message``, framed for TCP by RFC 6587 octet counting.

    The MSG part is a UTF-8 BOM followed by the message, which RFC 5424 requires for UTF-8 content.
    The frame is ``b"<length> <record>"`` where length counts the record's bytes.
    """
    when = (timestamp or timezone.now()).astimezone(dt.UTC)
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    header = (
        f"<{SYSLOG_PRI}>1 {stamp} {_header_field(hostname, 255)} {_header_field(app_name, 48)} - "
        f"{_header_field(msgid, 32)} - "
    )
    record = header.encode("ascii") + _BOM + message.encode("utf-8")
    return f"{len(record)} ".encode("ascii") + record
