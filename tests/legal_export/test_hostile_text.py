"""Hostile and unusual text in the record stays inert and intact in every file of a legal package."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # parsing our own output, to prove it is well-formed
from pathlib import Path

import pytest

from audit import checkpoints
from audit import verify_package as vp
from audit.signing import public_key_pem
from portal.legal import export_jobs
from portal.legal.models import ExportStatus
from tests.legal_export.conftest import PATIENT_A, ingest, read_zip
from tests.legal_export.test_build import CLI
from tests.legal_export.test_deid import _pdf_text

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script> ]]> \"'; DROP TABLE records_study;-- & Ünïcødé 肺"


@pytest.fixture
def hostile_package(ris, personas) -> Path:
    from portal.records.models import Study
    from portal.review.services import study_compare

    ingest(
        ris,
        "ACC-6666",
        PATIENT_A,
        "2025-05-05T09:30:00Z",
        f"FINDINGS:\nSmall left pleural effusion. {HOSTILE}\n\nIMPRESSION:\nSmall left pleural effusion.",
        f"Small right pleural effusion. {HOSTILE}",
    )
    for study in Study.objects.all():
        study_compare(study.pk)
    package = export_jobs.export_request(
        actor=personas["lena"],
        context=CLI,
        matter_reference="M-<img src=x onerror=alert(1)>",
        reason=HOSTILE,
        accession_numbers=["ACC-6666"],
    )
    built = export_jobs.export_build(package_pk=package.pk, out_path=None)
    assert built is not None and built.status == ExportStatus.READY, built and built.error
    return Path(built.file_path)


def test_the_package_with_hostile_text_verifies(hostile_package) -> None:
    report = vp.verify_package(hostile_package, public_key_pem(checkpoints.signing_key()))

    assert report.valid, report.reason


def test_json_records_keep_the_text_exactly(hostile_package) -> None:
    files = read_zip(hostile_package)

    reports = json.loads(files["records/ACC-6666/signed_reports.json"])
    assert any(HOSTILE in r["text"] for r in reports)
    assert json.loads(files["manifest.json"])["reason"] == HOSTILE


def test_the_load_file_is_well_formed_and_escapes_the_markup(hostile_package) -> None:
    raw = read_zip(hostile_package)["load_file.xml"]

    ET.fromstring(raw)  # noqa: S314 - our own output
    assert b"<script>" not in raw and b"<img" not in raw


def test_the_pdf_prints_the_text_literally(hostile_package) -> None:
    text = _pdf_text(read_zip(hostile_package)["report.pdf"])

    assert b"<script>alert(1)</script>" in text
    assert b"DROP TABLE records_study" in text
