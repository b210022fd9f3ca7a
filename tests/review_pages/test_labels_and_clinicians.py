"""The committee's verdicts as the engine's labelled data, and cases of readers known only from the
clinician directory (no portal account until an admin links one)."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from audit.log import SYSTEM
from audit.models import AuditEvent
from inference.compare.evaluate import evaluate, load_records
from portal.records.clinicians import clinician_link
from portal.records.models import AIOutput, Clinician, SignedReport, sha256_text
from portal.review import services
from portal.review.models import Comparison

pytestmark = pytest.mark.django_db


def _review(case, reviewer, verdicts, radpeer):
    return services.review_submit(
        comparison=case, reviewer=reviewer, radpeer=radpeer, comment="", verdicts=verdicts, context=SYSTEM
    )


def test_committee_labels_are_read_by_the_engines_evaluation(case, personas, tmp_path):
    first, *rest = list(case.discrepancies.order_by("pk"))
    other = "severity" if first.category != "severity" else "location"
    verdicts = {first.pk: services.VerdictInput("recategorise", category=other, correct_side="ai_draft")}
    verdicts |= {d.pk: services.VerdictInput("not_a_discrepancy") for d in rest}
    _review(case, personas["carol"], verdicts, "2a")
    out = tmp_path / "labels.jsonl"

    call_command("export_committee_labels", "--output", str(out))

    records = load_records(out)  # the engine's own reader accepts the file
    assert len(records) == 1
    record = records[0]
    assert (record["candidate"], record["reference"]) == (case.candidate.text, case.reference.text)
    # The committee's correction is the label; rejected discrepancies are not expected.
    assert [(e["category"], e["finding"]) for e in record["expected"]] == [(other, first.finding)]
    assert evaluate(records).pairs == 1
    assert os.stat(out).st_mode & 0o077 == 0  # report texts: owner-only
    event = AuditEvent.objects.get(action="committee_labels.export")
    assert event.details["cases"] == 1 and case.candidate.text not in json.dumps(event.details)


def test_only_the_latest_review_of_a_case_is_exported(case, personas, tmp_path):
    agree = {d.pk: services.VerdictInput("agree", correct_side="ai_draft") for d in case.discrepancies.all()}
    first = _review(case, personas["carol"], agree, "2b")
    reject = {d.pk: services.VerdictInput("not_a_discrepancy") for d in case.discrepancies.all()}
    services.review_submit(
        comparison=case,
        reviewer=personas["carol"],
        radpeer="1",
        comment="",
        verdicts=reject,
        supersedes=first,
        context=SYSTEM,
    )
    out = tmp_path / "labels.jsonl"

    call_command("export_committee_labels", "--output", str(out))

    assert [r["expected"] for r in load_records(out)] == [[]]


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "'; DROP TABLE review_review; --"])
def test_a_bad_since_date_is_refused(tmp_path, since):
    with pytest.raises(CommandError, match="--since"):
        call_command("export_committee_labels", "--output", str(tmp_path / "x.jsonl"), "--since", since)
    assert not (tmp_path / "x.jsonl").exists()


def test_a_directory_is_not_overwritten(tmp_path):
    with pytest.raises(CommandError):
        call_command("export_committee_labels", "--output", str(tmp_path))


@pytest.fixture
def unlinked_case(model_version, personas):
    """A report signed by a reader the RIS named, with no portal account yet."""
    from portal.records.models import Patient, Study

    reader = Clinician.objects.create(
        authority="RIS", identifier="R-4711", family_name="Kowalska", given_name="Anna"
    )
    when = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
    patient = Patient.objects.create(mrn="MRN-CL1", family_name="Testperson", given_name="Ada")
    study = Study.objects.create(
        accession_number="ACC-CL1", patient=patient, modality="CR", specialty="chest", study_datetime=when
    )
    draft, signed = "FINDINGS:\nNo pneumothorax.", "FINDINGS:\nLarge right pneumothorax."
    output = AIOutput.objects.create(
        study=study,
        kind="report_draft",
        model_version=model_version,
        text=draft,
        text_sha256=sha256_text(draft),
        payload_sha256="b" * 64,
        generated_at=when,
    )
    report = SignedReport.objects.create(
        study=study,
        clinician=reader,
        sections={"findings": signed},
        text=signed,
        text_sha256=sha256_text(signed),
        payload_sha256="c" * 64,
        signed_at=when + dt.timedelta(hours=1),
    )
    return services.comparison_create(candidate=output, reference=report)[0]


def test_a_reader_without_an_account_is_reviewed_under_the_clinician(page_for, unlinked_case, personas):
    assert unlinked_case.radiologist_id is None and unlinked_case.clinician.identifier == "R-4711"

    chair = page_for("dana").get(f"/review/cases/{unlinked_case.pk}/").content.decode()
    reviewer = page_for("carol").get(f"/review/cases/{unlinked_case.pk}/").content.decode()

    assert "Kowalska, Anna (no account linked)" in chair
    assert "Kowalska" not in reviewer and "Reader " in reviewer


def test_linking_the_clinician_brings_the_cases_to_the_account(page_for, unlinked_case, personas):
    with transaction.atomic():
        clinician_link(
            clinician_id=unlinked_case.clinician_id, account_id=personas["bob"].pk, actor=None, context=SYSTEM
        )

    assert Comparison.objects.get(pk=unlinked_case.pk).radiologist_id == personas["bob"].pk
    assert page_for("bob").get(f"/review/cases/{unlinked_case.pk}/").status_code == 200
    assert page_for("alice").get(f"/review/cases/{unlinked_case.pk}/").status_code == 404
    with transaction.atomic():
        clinician_link(clinician_id=unlinked_case.clinician_id, account_id=None, actor=None, context=SYSTEM)
    assert Comparison.objects.get(pk=unlinked_case.pk).radiologist_id is None
