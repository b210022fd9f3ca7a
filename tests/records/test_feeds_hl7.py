"""HL7 feeds as RIS systems send them: unknown numeric signers, v2.3 and v2.4, LF, Z-segments, P -> F -> C."""

from __future__ import annotations

from pathlib import Path

import hl7 as python_hl7
import pytest

from portal.records.models import Clinician, InboundMessage, SignedReport, Study

pytestmark = pytest.mark.django_db

FEEDS = Path(__file__).resolve().parent.parent / "adapters" / "data" / "feeds"
URL = "/api/v1/hl7"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def feed(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def send(client, body: bytes):
    response = client.post(URL, data=body, content_type="x-application/hl7-v2+er7")
    ack = python_hl7.parse(response.content.decode("utf-8"))
    return response, str(ack.segment("MSA")[1]), str(ack.segment("MSA")[3])


def test_a_v23_lf_message_signed_by_an_unknown_numeric_provider_is_stored(ris):
    response, code, text = send(ris, feed("oru_v23_lf_numeric_signer.hl7"))

    assert (response.status_code, code, text) == (200, "AA", "stored")
    report = SignedReport.objects.select_related("clinician", "study").get()
    signer = report.clinician
    assert (signer.authority, signer.identifier) == ("NORTHGEN", "16621")  # no XCN-9: the sending facility
    assert (signer.family_name, signer.given_name) == ("ORANGE", "PANDA")
    assert report.radiologist is None
    # Section headers sent as OBX lines of their own, blank OBX spacers, the trailer and the Z-segment.
    assert report.sections["indication"] == "Abdominal pain, rule out obstruction."
    assert report.sections["findings"].startswith("Nonobstructive bowel gas pattern.")
    assert report.sections["impression"].startswith("No radiographic evidence of bowel obstruction.")
    assert report.text.rstrip().endswith("Signed by: Panda Orange, MD on 05/12/2024 2:30 PM")
    assert report.study.accession_number == "7795083186"


def test_the_same_provider_signing_again_is_the_same_clinician(ris):
    send(ris, feed("oru_v23_lf_numeric_signer.hl7"))
    other = (
        feed("oru_v23_lf_numeric_signer.hl7")
        .replace(b"7795083186", b"7795083999")
        .replace(b"NG20240512143012001", b"NG20240512143012002")
    )

    send(ris, other)

    assert Clinician.objects.count() == 1
    assert SignedReport.objects.values("clinician").distinct().count() == 1


def test_a_preliminary_then_a_final_then_a_correction(ris):
    prelim, prelim_code, prelim_text = send(ris, feed("oru_v24_preliminary.hl7"))
    final, final_code, _ = send(ris, feed("oru_v24_final.hl7"))
    corrected, corrected_code, _ = send(ris, feed("oru_v24_correction.hl7"))

    # The resident's preliminary read is acknowledged (the RIS queue moves on) but is not evidence.
    assert (prelim.status_code, prelim_code) == (200, "AA")
    assert "not stored" in prelim_text
    assert (final.status_code, final_code) == (200, "AA")
    assert (corrected.status_code, corrected_code) == (200, "AA")
    study = Study.objects.get(accession_number="7795090001")
    final_report, correction = SignedReport.objects.filter(study=study).order_by("signed_at")
    assert (final_report.status, correction.status) == ("final", "correction")
    assert correction.amends == final_report
    assert "RIGHT pleural effusion" in correction.text
    signer = final_report.clinician
    assert (signer.authority, signer.identifier) == ("NORTHGEN-RIS", "16621")  # CNN subcomponent 9
    assert correction.clinician == signer
    outcomes = list(InboundMessage.objects.order_by("pk").values_list("outcome", "message_id"))
    assert outcomes == [
        ("ignored", "NG20240513081500001"),
        ("stored", "NG20240513093000001"),
        ("stored", "NG20240513161000001"),
    ]


def test_a_signer_whose_id_is_a_radiologist_username_is_linked_to_that_account(ris, personas):
    body = feed("oru_v24_final.hl7").replace(b"16621&ORANGE&PANDA&&&&MD&&NORTHGEN-RIS", b"alice")

    send(ris, body)

    report = SignedReport.objects.get()
    assert report.radiologist == personas["alice"]
    assert report.clinician.account == personas["alice"]


def test_a_message_with_no_signer_anywhere_is_refused_with_the_field(ris):
    body = feed("oru_v24_final.hl7").replace(b"16621&ORANGE&PANDA&&&&MD&&NORTHGEN-RIS", b"")

    response, code, text = send(ris, body)

    assert (response.status_code, code) == (400, "AR")
    assert "interpreter" in text
    assert SignedReport.objects.count() == 0 and Study.objects.count() == 0
    logged = InboundMessage.objects.get()
    assert (logged.outcome, logged.location, logged.status_code) == ("rejected", "OBR-32", 400)
    assert bytes(logged.body) == body  # kept exactly as received, for a replay once fixed


def test_a_hostile_signer_name_is_stored_verbatim_and_only_as_data(ris):
    hostile = b"16621&<script>alert(1)</script>&Robert'); DROP TABLE x;--&&&&&&NORTHGEN-RIS"
    body = feed("oru_v24_final.hl7").replace(b"16621&ORANGE&PANDA&&&&MD&&NORTHGEN-RIS", hostile)

    response, code, _ = send(ris, body)

    assert code == "AA"
    clinician = Clinician.objects.get()
    assert clinician.family_name == "<script>alert(1)</script>"
    assert clinician.given_name == "Robert'); DROP TABLE x;--"
