"""Stored XSS and CSV injection: hostile text through every input path comes out inert on every page.

Hostile markup goes in through REST (patient name, study description, AI draft, signed report), HL7
(patient name, report text), FHIR (conclusion, presented form), a DICOM upload's file name and the
review form (comment, feedback). Then every page that shows records is rendered for the roles that
see it, and none may contain the markup unescaped; the case page must show it escaped (so the check
is not passing merely because the text is absent). The chair's CSV export must not start a cell
with a formula character.
"""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils.html import escape

from portal.records.models import Study
from portal.review import services
from portal.review.models import Comparison
from tests.adapters.conftest import build_oru
from tests.factories import ai_output_json, signed_report_json, study_json

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
SVG = "<svg/onload=alert(3)>"
HOSTILE = f"Effusion {SCRIPT} {IMG} {SVG} end."
# What must never reach a page verbatim: the tags as markup (escaped, "&lt;script&gt;" is harmless).
RAW_MARKERS = ("<script>alert", "<img src=x", "<svg/onload", "onerror=alert(2)>")
FORMULAS = ('=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1:A2)")
DATA = Path(__file__).resolve().parent.parent / "adapters" / "data"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """PBKDF2 costs seconds per persona on the small CI machine; MD5 is enough for a test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _page_client(user) -> Client:  # a User
    client = Client()
    client.force_login(user)
    return client


def _add_draft(ris, accession: str, text: str = HOSTILE) -> None:
    response = ris.post("/api/v1/ai-outputs", ai_output_json(accession=accession, text=text), format="json")
    assert response.status_code == 201, response.content


@pytest.fixture
def hostile_cases(ris, personas) -> list[Comparison]:
    """Three cases, one per ingestion standard (REST, HL7, FHIR), each carrying hostile text."""
    # REST: every free-text field of the pair.
    study = study_json(
        description=f"XR {SCRIPT}",
        patient={**study_json()["patient"], "family_name": f"Doe{IMG}", "given_name": SVG},
    )
    assert ris.post("/api/v1/studies", study, format="json").status_code == 201
    _add_draft(ris, "ACC1001")
    report = signed_report_json(
        sections={"indication": SCRIPT, "findings": HOSTILE, "impression": f"Normal {IMG}"}
    )
    response = ris.post("/api/v1/signed-reports", report, format="json")
    assert response.status_code == 201, response.content

    # HL7: patient name and report text (no HL7 separators in the payloads, so they stay one field).
    message = build_oru(
        {
            "PID": {5: f"{SCRIPT}^{SVG}"},
            "OBR": {3: "ACC-HL7", 32: "alice"},
            "OBX": {5: f"FINDINGS: {HOSTILE}"},
        }
    )
    response = ris.post("/api/v1/hl7", data=message, content_type="x-application/hl7-v2+er7")
    assert response.status_code == 200, response.content
    assert b"MSA|AA" in response.content, response.content
    _add_draft(ris, "ACC-HL7")

    # FHIR: conclusion and the presented form (the report text).
    body = copy.deepcopy(json.loads((DATA / "fhir_final.json").read_text(encoding="utf-8")))
    body["resultsInterpreter"] = [{"identifier": {"system": "urn:concordance:username", "value": "alice"}}]
    body["conclusion"] = HOSTILE
    text = base64.b64encode(f"FINDINGS: {HOSTILE}".encode()).decode("ascii")
    body["presentedForm"] = [{"contentType": "text/plain; charset=utf-8", "data": text}]
    response = ris.post(
        "/api/v1/fhir/DiagnosticReport", data=json.dumps(body), content_type="application/fhir+json"
    )
    assert response.status_code == 201, response.content
    fhir_accession = Study.objects.exclude(accession_number__in=["ACC1001", "ACC-HL7"]).get().accession_number
    _add_draft(ris, fhir_accession)

    for study_id in Study.objects.values_list("pk", flat=True):
        services.study_compare(study_id)
    cases = list(Comparison.objects.order_by("pk"))
    assert len(cases) == 3

    # The review form: a hostile comment and hostile feedback to the radiologist (alice).
    chair = _page_client(personas["dana"])
    for case in cases:
        # A discrepant score only where a verdict finds the signed report wrong (none without discrepancies).
        radpeer = "2a" if case.discrepancies.exists() else "1"
        form = {"radpeer": radpeer, "comment": HOSTILE, "send_feedback": "on", "feedback_message": HOSTILE}
        form.update({f"verdict_{d.pk}": "agree" for d in case.discrepancies.all()})
        form.update({f"side_{d.pk}": "ai_draft" for d in case.discrepancies.all()})  # the report erred
        response = chair.post(f"/review/cases/{case.pk}/adjudicate/", form)
        assert response.status_code in (302, 303), response.content.decode()[:2000]
    return cases


def _assert_inert(html: str, where: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in html, f"{where}: unescaped {marker!r}"


def test_hostile_text_from_every_standard_is_escaped_on_every_page(hostile_cases, personas):
    pages = [
        "/",
        "/audit/",
        "/review/queue/",
        "/review/dashboard/",
        "/review/campaigns/",
        "/review/performance/",
    ]
    pages += [f"/review/cases/{case.pk}/" for case in hostile_cases]
    seen = 0
    for name in ("dana", "carol", "otto", "alice"):
        client = _page_client(personas[name])
        for url in [*pages, "/review/feedback/"]:
            response = client.get(url)
            if response.status_code != 200:
                continue  # this role may not see that page: the role matrix tests say which
            seen += 1
            _assert_inert(response.content.decode(), f"{name} {url}")
    assert seen >= 10

    # Not vacuous: the hostile text is on the case page, escaped.
    case_html = _page_client(personas["dana"]).get(f"/review/cases/{hostile_cases[0].pk}/").content.decode()
    assert escape(SCRIPT) in case_html or "&lt;script&gt;" in case_html
    feedback_html = _page_client(personas["alice"]).get("/review/feedback/").content.decode()
    assert "&lt;script&gt;" in feedback_html


def test_a_hostile_dicom_file_name_is_never_shown_or_used_as_a_path(ris, personas, tmp_path):
    from portal.demo.synthetic import generate_department, write_dicom

    department = generate_department(studies=1, seed=7)
    study = department.studies[0]
    path = tmp_path / "study.dcm"
    write_dicom(study, department.patient(study.patient_mrn), path)
    before = set(Path("/tmp").iterdir())
    for name in (f"{SCRIPT}.dcm", "../../../../tmp/h7-traversal.dcm", "..\\..\\evil.dcm", "/etc/passwd"):
        upload = SimpleUploadedFile(name, path.read_bytes())
        response = ris.post("/api/v1/dicom", {"file": upload}, format="multipart")
        assert response.status_code in (200, 201), response.content
        assert SCRIPT not in response.content.decode()
    assert not Path("/tmp/h7-traversal.dcm").exists()
    assert {p for p in Path("/tmp").iterdir() if p.name.startswith("h7-")} <= before
    html = _page_client(personas["dana"]).get("/").content.decode()
    _assert_inert(html, "home after DICOM upload")


def test_the_performance_csv_never_starts_a_cell_with_a_formula(ris, personas):
    # The radiologist's username is a cell of the export: give one a formula-like name.
    from django.contrib.auth.models import Group, User

    evil = User.objects.create_user(username="=cmd|' /C calc'!A0")
    evil.groups.add(Group.objects.get_or_create(name="radiologist")[0])
    assert ris.post("/api/v1/studies", study_json(), format="json").status_code == 201
    _add_draft(ris, "ACC1001", text="FINDINGS: Small left pleural effusion.")
    report = signed_report_json(
        radiologist=evil.username, sections={"findings": "No effusion. " + FORMULAS[0]}
    )
    response = ris.post("/api/v1/signed-reports", report, format="json")
    assert response.status_code == 201, response.content
    services.study_compare(Study.objects.get().pk)

    response = _page_client(personas["dana"]).get("/review/performance.csv")
    assert response.status_code == 200
    text = b"".join(response.streaming_content if response.streaming else [response.content]).decode()
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert cells
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
