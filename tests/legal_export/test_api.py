"""The export API: who may use it, what bad input gets, and the audited, permission-checked download."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET  # parsing our own output in a test
import zipfile
from pathlib import Path

import pytest

from audit.models import AuditEvent
from portal.legal import export_jobs
from portal.legal.models import ExportPackage, ExportStatus

pytestmark = pytest.mark.django_db

EXPORTS = "/api/v1/legal/exports"
HOSTILE = "<script>alert('x')</script> ' OR 1=1; -- \x07 & \"quoted\" </Root> ]]> é ✓"


def _request(client, **body):
    payload = {"matter_reference": "M-1", "reason": "Claim", **body}
    return client.post(EXPORTS, payload, format="json")


def test_legal_requests_a_package(department, client_for) -> None:
    response = _request(client_for("lena"), accession_numbers=["ACC-7001"])
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["download_url"] is None
    assert body["progress"] == {"done": 0, "total": 1}
    package = ExportPackage.objects.get()
    assert package.requested_by.username == "lena"
    event = AuditEvent.objects.get(action="export.request")
    assert event.object_id == str(package.pk) and event.actor_username == "lena"
    assert "ACC-7001" not in json.dumps(event.details)  # references only in the log


@pytest.mark.parametrize("name", ["alice", "carol", "dana", "otto", "ris", "eve"])
def test_other_roles_are_refused(department, client_for, name) -> None:
    client = client_for(name)
    assert _request(client, accession_numbers=["ACC-7001"]).status_code == 403
    assert client.get(EXPORTS).status_code == 403
    assert ExportPackage.objects.count() == 0


def test_anonymous_is_refused(department, client_for) -> None:
    assert _request(client_for(None), accession_numbers=["ACC-7001"]).status_code in (401, 403)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "Give a scope"),
        ({"accession_numbers": ["ACC-7001", "NOPE-1"]}, "Unknown accession numbers: NOPE-1."),
        ({"patient_mrn": "MRN-NONE"}, "No patient has this MRN."),
        ({"model": "ghost:9"}, "No model version has this name and version."),
        ({"model": "no-version"}, "NAME:VERSION"),
        ({"date_from": "1990-01-01", "date_to": "1990-12-31"}, "The scope matches no study."),
        ({"date_from": "2025-01-01"}, "both date_from and date_to"),
        ({"date_from": "2025-12-01", "date_to": "2025-01-01"}, "must not be after"),
        ({"accession_numbers": "ACC-7001"}, "list"),
        ({"accession_numbers": []}, "empty"),
        ({"accession_numbers": ["A"] * 10_001}, "10000"),
        ({"date_from": "yesterday", "date_to": "2025-01-01"}, "Date has wrong format"),
        ({"deidentify": "perhaps", "accession_numbers": ["ACC-7001"]}, "valid boolean"),
        ({"matter_reference": "", "accession_numbers": ["ACC-7001"]}, "blank"),
        ({"reason": "   ", "accession_numbers": ["ACC-7001"]}, "A reason is required."),
        ({"matter_reference": "M" * 129, "accession_numbers": ["ACC-7001"]}, "128"),
    ],
)
def test_bad_input_is_refused_without_a_job(department, client_for, body, fragment) -> None:
    response = _request(client_for("lena"), **body)
    assert response.status_code == 400, response.json()
    assert fragment in json.dumps(response.json(), ensure_ascii=False)
    assert ExportPackage.objects.count() == 0
    assert not AuditEvent.objects.filter(action="export.request").exists()


def test_hostile_text_is_stored_verbatim_and_escaped(department, client_for) -> None:
    client = client_for("lena")
    response = _request(
        client, matter_reference=HOSTILE[:128], reason=HOSTILE, accession_numbers=["ACC-7001"]
    )
    assert response.status_code == 202
    package = ExportPackage.objects.get()
    assert package.reason == HOSTILE and package.matter_reference == HOSTILE[:128]
    built = export_jobs.export_build(package_pk=package.pk)
    assert built.status == ExportStatus.READY, built.error
    download = client.get(f"{EXPORTS}/{package.pk}/download")
    with zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        load_file = zf.read("load_file.xml")
        pdf = zf.read("report.pdf")
    assert manifest["reason"] == HOSTILE
    root = ET.fromstring(load_file)  # noqa: S314 - our own output; it must parse despite the text
    matter = root.find("./Batch/Tags/Tag[@TagName='Matter']")
    assert matter is not None and matter.get("TagValue") == HOSTILE[:128].replace("\x07", "\ufffd")
    assert b"<script>" not in load_file
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")


def test_list_detail_cancel_and_download(department, client_for, personas) -> None:
    client = client_for("lena")
    first = _request(client, accession_numbers=["ACC-7001"]).json()
    second = _request(client, patient_mrn="MRN-YW5532").json()
    listing = client.get(EXPORTS).json()
    assert [row["id"] for row in listing["results"]] == [second["id"], first["id"]]

    # Not ready yet: 409, and nothing audited as a download.
    assert client.get(f"{EXPORTS}/{first['id']}/download").status_code == 409
    assert not AuditEvent.objects.filter(action="export.download").exists()

    cancelled = client.post(f"{EXPORTS}/{second['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert "no package was produced" in cancelled.json()["error"]
    assert client.post(f"{EXPORTS}/{second['id']}/cancel").status_code == 409
    assert export_jobs.export_build(package_pk=second["id"]) is None  # a cancelled job is never built
    assert client.get(f"{EXPORTS}/{second['id']}/download").status_code == 409

    export_jobs.export_build(package_pk=first["id"])
    detail = client.get(f"{EXPORTS}/{first['id']}").json()
    assert detail["status"] == "ready" and detail["progress"]["done"] == detail["progress"]["total"]
    assert detail["download_url"] == f"{EXPORTS}/{first['id']}/download"

    assert client_for("otto").get(f"{EXPORTS}/{first['id']}/download").status_code == 403
    response = client.get(detail["download_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["X-Content-SHA256"] == detail["sha256"]
    data = b"".join(response.streaming_content)
    assert len(data) == detail["size"]
    event = AuditEvent.objects.get(action="export.download")
    assert event.actor_username == "lena" and event.details["sha256"] == detail["sha256"]
    assert client.get(f"{EXPORTS}/999999").status_code == 404


def test_package_files_never_live_under_a_public_path(department, client_for, settings) -> None:
    client = client_for("lena")
    package_id = _request(client, accession_numbers=["ACC-7001"]).json()["id"]
    built = export_jobs.export_build(package_pk=package_id)
    path = Path(built.file_path)
    assert path.is_relative_to(Path(settings.VAR_DIR) / "exports")
    assert not path.is_relative_to(Path(settings.STATIC_ROOT))
