"""POST /api/v1/hl7 through the HTTP stack: the ACK (parsed with python-hl7), stored rows and audit events."""

from __future__ import annotations

from pathlib import Path

import hl7 as python_hl7
import pytest

from audit.models import AuditEvent
from portal.records.models import AIOutput, Patient, SignedReport, Study
from tests.adapters.conftest import build_oru
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db

URL = "/api/v1/hl7"
WORKERS = 20
ER7 = "x-application/hl7-v2+er7"
DATA = Path(__file__).resolve().parent.parent / "adapters" / "data"
SAMPLE_ACCESSION = "ACC20240301001"
# build_oru's message is signed by JSMITH, who has no account here; alice is a radiologist persona.
SIGNED_BY_ALICE = {32: "alice"}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The personas' default PBKDF2 hashing costs seconds per test on a small machine; MD5 is enough here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sample(name: str) -> str:
    """A sample message signed by alice instead of the sample's JSMITH."""
    return (DATA / name).read_bytes().decode("utf-8").replace("JSMITH&Smith&John", "alice")


def with_endings(text: str, ending: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", ending)


def post(client, message: str | bytes, content_type: str = ER7):
    return client.post(URL, data=message, content_type=content_type)


def msa(response) -> tuple[str, str, str]:
    """MSA-1 (code), MSA-2 (the control id acknowledged) and MSA-3 (text) of the ACK in the response."""
    assert response["Content-Type"].startswith(ER7)
    ack = python_hl7.parse(response.content.decode("utf-8"))
    segment = ack.segment("MSA")
    return str(segment[1]), str(segment[2]), str(segment[3])


def assert_nothing_written() -> None:
    assert Patient.objects.count() == 0
    assert Study.objects.count() == 0
    assert AIOutput.objects.count() == 0
    assert SignedReport.objects.count() == 0
    # A refusal is itself audited (access.denied); what must not exist is any change or its event.
    assert AuditEvent.objects.exclude(action="access.denied").count() == 0


# --- accepted messages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_a_final_oru_is_accepted_whatever_the_line_endings(ris, personas, ending):
    response = post(ris, with_endings(sample("oru_final_ct_chest.hl7"), ending))

    assert response.status_code == 200
    assert msa(response) == ("AA", "RIS000123", "stored")
    study = Study.objects.get(accession_number=SAMPLE_ACCESSION)
    report = SignedReport.objects.get()
    assert (report.study, report.radiologist, report.status) == (study, personas["alice"], "final")
    assert report.sections["impression"] == "6 mm RLL nodule; follow-up CT in 6-12 months."
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == [
        "patient.create",
        "study.create",
        "clinician.create",
        "signed_report.final",
    ]
    assert AuditEvent.objects.filter(actor_username="ris").count() == 4


def test_plain_text_is_accepted_as_well(ris):
    response = post(ris, build_oru({"OBR": SIGNED_BY_ALICE}), content_type="text/plain")

    assert msa(response)[0] == "AA"
    assert SignedReport.objects.count() == 1


def test_obx_text_split_over_raw_lines_is_rejoined(ris):
    text = "FINDINGS: Small left effusion.\nIMPRESSION: Effusion."
    message = build_oru({"OBR": SIGNED_BY_ALICE, "OBX": {5: text}})

    response = post(ris, message)

    assert msa(response)[0] == "AA", response.content
    report = SignedReport.objects.get()
    assert report.sections == {"findings": "Small left effusion.", "impression": "Effusion."}


def test_a_message_without_pv1_or_orc_is_accepted(ris):
    message = build_oru({"OBR": SIGNED_BY_ALICE})
    assert "\rPV1|" not in message and "\rORC|" not in message

    response = post(ris, message)

    assert response.status_code == 200
    assert msa(response) == ("AA", "CTRL42", "stored")
    assert Study.objects.get().accession_number == "ACC1"


def test_a_duplicate_message_is_acknowledged_as_already_stored(ris):
    post(ris, sample("oru_final_ct_chest.hl7"))
    events = AuditEvent.objects.count()

    response = post(ris, sample("oru_final_ct_chest.hl7"))

    assert response.status_code == 200
    assert msa(response) == ("AA", "RIS000123", "already stored")
    assert SignedReport.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_an_ai_draft_is_stored_as_an_ai_output(ris):
    response = post(ris, (DATA / "oru_ai_draft.hl7").read_bytes())

    assert response.status_code == 200
    assert msa(response) == ("AA", "AI-7f3a9c", "stored")
    output = AIOutput.objects.get()
    assert (output.model_version.name, output.model_version.version) == ("chestdraft", "2.1.0")
    assert output.kind == "report_draft"
    assert output.study.accession_number == SAMPLE_ACCESSION
    assert SignedReport.objects.count() == 0


def test_hostile_text_is_stored_verbatim(ris):
    hostile = "FINDINGS: <script>alert(1)</script> '; DROP TABLE records_signedreport; --"
    response = post(ris, build_oru({"OBR": SIGNED_BY_ALICE, "OBX": {5: hostile}}))

    assert msa(response)[0] == "AA"
    assert SignedReport.objects.get().text == hostile


# --- refused messages --------------------------------------------------------------------------------
def test_a_second_final_with_different_text_is_ae_409_and_changes_nothing(ris):
    post(ris, build_oru({"OBR": SIGNED_BY_ALICE}))
    original = SignedReport.objects.get().text
    events = AuditEvent.objects.count()
    second = build_oru({"MSH": {10: "CTRL43"}, "OBR": SIGNED_BY_ALICE, "OBX": {5: "FINDINGS: Pneumonia."}})

    response = post(ris, second)

    assert response.status_code == 409
    assert msa(response)[:2] == ("AE", "CTRL43")
    assert SignedReport.objects.get().text == original
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(
    ("message", "control_id"),
    [
        pytest.param("this is not an HL7 message", "", id="garbage"),
        pytest.param(build_oru({"MSH": {9: "ADT^A01"}, "OBR": SIGNED_BY_ALICE}), "CTRL42", id="adt"),
        pytest.param(build_oru({"OBR": {**SIGNED_BY_ALICE, 2: None, 3: None}}), "CTRL42", id="no-obr-3"),
    ],
)
def test_an_unacceptable_message_is_ar_400_and_writes_nothing(ris, message, control_id):
    response = post(ris, message)

    assert response.status_code == 400
    assert msa(response)[:2] == ("AR", control_id)
    ack = python_hl7.parse(response.content.decode("utf-8"))
    assert ack.segment("ERR")  # the reason is coded for the sender's engine
    assert_nothing_written()


def test_an_unknown_signer_becomes_a_new_clinician_and_the_report_is_stored(ris):
    response = post(ris, build_oru({"OBR": {32: "16621^ORANGE^PANDA"}}))

    assert response.status_code == 200
    assert msa(response)[0] == "AA"
    report = SignedReport.objects.select_related("clinician").get()
    assert report.radiologist is None  # nobody has linked this reader to an account yet
    clinician = report.clinician
    assert (clinician.identifier, clinician.family_name, clinician.given_name) == ("16621", "ORANGE", "PANDA")
    assert clinician.account is None


# --- access ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("persona", ["alice", "carol", "dana", "lena", "otto", "eve"])
def test_other_roles_get_403(client_for, persona):
    response = post(client_for(persona), build_oru({"OBR": SIGNED_BY_ALICE, "MSH": {10: "CTRL403"}}))

    assert response.status_code == 403
    assert msa(response)[:2] == ("AR", "CTRL403")  # an HL7 sender reads the MSA, not JSON
    assert_nothing_written()


def test_anonymous_is_401(client_for):
    response = post(client_for(None), build_oru({"OBR": SIGNED_BY_ALICE, "MSH": {10: "CTRL401"}}))

    assert response.status_code == 401
    code, control_id, text = msa(response)
    assert (code, control_id) == ("AR", "CTRL401")
    assert "credentials" in text.lower()
    assert "WWW-Authenticate" in response
    assert_nothing_written()


def test_a_database_lost_while_checking_the_token_is_a_nak_503_to_retry(client_for, monkeypatch):
    from django.db import OperationalError
    from rest_framework.authentication import TokenAuthentication

    client = client_for("ris")

    def connection_lost(self, key):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(TokenAuthentication, "authenticate_credentials", connection_lost)
    response = post(client, build_oru({"OBR": SIGNED_BY_ALICE, "MSH": {10: "CTRL503"}}))

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert msa(response)[:2] == ("AE", "CTRL503")
    assert "ERR|" in response.content.decode()
    assert_nothing_written()


def _answer(response) -> tuple[int, str]:
    return response.status_code, msa(response)[2]


# --- concurrency -----------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_twenty_identical_messages_at_once_store_one_report(personas):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=personas["ris"]).key
    message = build_oru({"OBR": SIGNED_BY_ALICE})
    answers = at_once(WORKERS, token, lambda client: _answer(post(client, message)))

    assert sorted(answers) == [(200, "already stored")] * (WORKERS - 1) + [(200, "stored")]
    assert SignedReport.objects.count() == 1
    assert Study.objects.count() == 1
    assert AuditEvent.objects.filter(action="signed_report.final").count() == 1
