"""The retention purge of studies the QA committee has worked on.

Assignments, reviews (with corrections), verdicts and feedback protect the cases they are about; the
purge removes them with the study, in the same transaction and audit event, and leaves held studies,
the audit trail and already-built export packages untouched.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from audit import checkpoints, immutability
from audit import verify_package as vp
from audit.log import SYSTEM
from audit.models import AuditEvent
from audit.signing import public_key_pem
from audit.verify import verify_log
from inference.models import ReinferenceChunk, ReinferenceResult, ReinferenceRun
from portal.legal import export_jobs
from portal.legal import services as legal
from portal.legal.models import ExportPackage
from portal.records.models import AIOutput, ModelVersion, Patient, SignedReport, Study, sha256_text
from portal.review import services as review
from portal.review.models import Assignment, Comparison, Discrepancy, DiscrepancyVerdict, Feedback, Review
from portal.review.services import VerdictInput

pytestmark = pytest.mark.django_db

DRAFT = "FINDINGS:\nSmall left pleural effusion. No pneumothorax."
SIGNED = "FINDINGS:\nSmall right pleural effusion. Right apical pneumothorax."


@pytest.fixture(autouse=True)
def signing_key(settings, tmp_path: Path):
    """A throwaway var dir and checkpoint key (export packages are signed and written there)."""
    settings.VAR_DIR = tmp_path
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "audit-signing-key.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = True
    checkpoints._signing_key.cache_clear()
    yield
    checkpoints._signing_key.cache_clear()


def reviewed_study(accession: str, mrn: str, personas) -> Study:
    """A 2019 study the committee worked on: assigned, reviewed, corrected, fed back, acknowledged,
    and re-inferred."""
    alice, carol, dana = personas["alice"], personas["carol"], personas["dana"]
    when = dt.datetime(2019, 5, 6, 10, 0, tzinfo=dt.UTC)
    patient = Patient.objects.create(mrn=mrn, family_name="Testperson")
    study = Study.objects.create(accession_number=accession, patient=patient, specialty="chest",
                                 modality="CR", study_datetime=when)  # fmt: skip
    version, _ = ModelVersion.objects.get_or_create(name="concordance-chest", version="1.0.0")
    output = AIOutput.objects.create(
        study=study, kind="report_draft", model_version=version, text=DRAFT, text_sha256=sha256_text(DRAFT),
        payload_sha256="b" * 64, generated_at=when,
    )  # fmt: skip
    report = SignedReport.objects.create(
        study=study, radiologist=alice, sections={"findings": SIGNED}, text=SIGNED,
        text_sha256=sha256_text(SIGNED), payload_sha256="c" * 64, signed_at=when + dt.timedelta(hours=1),
    )  # fmt: skip
    case, _ = review.comparison_create(candidate=output, reference=report)
    assert case.discrepancies.count() >= 1
    review.assignments_create(comparison_ids=[case.pk], reviewer=carol, actor=dana, context=SYSTEM)
    agree = {d.pk: VerdictInput(verdict="agree", correct_side="ai_draft") for d in case.discrepancies.all()}
    first = review.review_submit(
        comparison=case, reviewer=carol, radpeer="2b", comment="Missed.", verdicts=agree,
        feedback_message="Please look at the apex.", context=SYSTEM,
    )  # fmt: skip
    review.review_submit(
        comparison=case, reviewer=carol, radpeer="3b", comment="On reflection, expected.", verdicts=agree,
        feedback_message="", supersedes=first, context=SYSTEM,
    )  # fmt: skip
    review.feedback_acknowledge(feedback_id=Feedback.objects.get(review=first).pk, user=alice, context=SYSTEM)
    run = ReinferenceRun.objects.create(model_version=version, chunk_size=10, total=1)
    chunk = ReinferenceChunk.objects.create(run=run, index=0, items=[study.pk])
    ReinferenceResult.objects.create(
        run=run, chunk=chunk, study=study, original=output, reference=report, status="ok",
        text="Right pneumothorax.", radpeer_suggested="1", original_radpeer="3b",
    )  # fmt: skip
    return study


def rows_of(study_pk: int) -> dict[str, int]:
    """How many rows of each kind still point at the study."""
    return {
        "studies": Study.objects.filter(pk=study_pk).count(),
        "ai_outputs": AIOutput.objects.filter(study_id=study_pk).count(),
        "signed_reports": SignedReport.objects.filter(study_id=study_pk).count(),
        "comparisons": Comparison.objects.filter(study_id=study_pk).count(),
        "discrepancies": Discrepancy.objects.filter(comparison__study_id=study_pk).count(),
        "assignments": Assignment.objects.filter(comparison__study_id=study_pk).count(),
        "reviews": Review.objects.filter(comparison__study_id=study_pk).count(),
        "verdicts": DiscrepancyVerdict.objects.filter(review__comparison__study_id=study_pk).count(),
        "feedback": Feedback.objects.filter(comparison__study_id=study_pk).count(),
        "reinference_results": ReinferenceResult.objects.filter(study_id=study_pk).count(),
    }


def purge(*args: str) -> str:
    """Run the retention purge command and return what it printed."""
    out = io.StringIO()
    call_command("retention_purge", *args, stdout=out)
    return out.getvalue()


def test_a_reviewed_study_past_retention_is_purged_completely_and_a_held_one_kept(personas):
    gone = reviewed_study("ACC-PURGE-1", "MRN-PURGE-1", personas)
    held = reviewed_study("ACC-PURGE-2", "MRN-PURGE-2", personas)
    before_held = rows_of(held.pk)
    assert before_held["reviews"] == 2 and before_held["feedback"] == 1 and before_held["assignments"] == 1
    legal.legal_hold_place(
        actor=personas["lena"], context=SYSTEM, matter_reference="Doe-QA", reason="R",
        accession_numbers=["ACC-PURGE-2"],
    )  # fmt: skip
    expected = rows_of(gone.pk)
    size_before = AuditEvent.objects.count()

    output = purge("--before", "2020-01-01")

    assert output.strip().endswith("1 studies purged, 1 kept under legal hold, 1 patients purged")
    assert set(rows_of(gone.pk).values()) == {0}
    assert not Patient.objects.filter(mrn="MRN-PURGE-1").exists()
    assert rows_of(held.pk) == before_held
    [event] = AuditEvent.objects.filter(action="retention.purge")
    assert event.study_id == gone.pk
    deleted = event.details["deleted"]
    assert deleted["reviews"] == expected["reviews"] == 2
    assert deleted["discrepancy_verdicts"] == expected["verdicts"] >= 2
    assert (deleted["feedback"], deleted["assignments"]) == (1, 1)
    assert deleted["reinference_results"] == 1
    assert AuditEvent.objects.count() == size_before + 1
    assert verify_log().ok


def test_a_dry_run_counts_the_committee_work_and_changes_nothing(personas):
    study = reviewed_study("ACC-PURGE-3", "MRN-PURGE-3", personas)
    before = rows_of(study.pk)

    [outcome] = list(legal.retention_purge(before=dt.date(2020, 1, 1), dry_run=True))

    assert rows_of(study.pk) == before
    assert outcome.deleted["reviews"] == 2 and outcome.deleted["feedback"] == 1


def test_reviews_and_verdicts_are_immutable_again_after_the_purge(personas):
    reviewed_study("ACC-PURGE-4", "MRN-PURGE-4", personas)
    kept = reviewed_study("ACC-PURGE-5", "MRN-PURGE-5", personas)
    Study.objects.filter(pk=kept.pk).update(study_datetime=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))

    purge("--before", "2020-01-01")

    assert {"review_review", "review_discrepancyverdict"} <= set(legal.PURGED_IMMUTABLE_TABLES)
    assert set(legal.PURGED_IMMUTABLE_TABLES) <= set(immutability.IMMUTABLE_TABLES)
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.filter(comparison__study=kept).delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        DiscrepancyVerdict.objects.filter(review__comparison__study=kept).delete()
    assert rows_of(kept.pk)["reviews"] == 2


def test_a_failure_midway_leaves_the_study_whole(personas, monkeypatch):
    study = reviewed_study("ACC-PURGE-6", "MRN-PURGE-6", personas)
    before = rows_of(study.pk)
    events_before = AuditEvent.objects.count()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(legal, "_delete_reports", broken)  # after the reviews, before the study
    with pytest.raises(RuntimeError):
        legal.study_purge(study=study, dry_run=False)

    assert rows_of(study.pk) == before  # the reviews' deletion was rolled back with the rest
    assert AuditEvent.objects.count() == events_before


def test_an_export_package_built_before_the_purge_stays_valid(personas):
    study = reviewed_study("ACC-PURGE-7", "MRN-PURGE-7", personas)
    package = export_jobs.export_request(
        actor=personas["lena"], context=SYSTEM, matter_reference="M-QA", reason="QA history",
        accession_numbers=["ACC-PURGE-7"], enqueue=False,
    )  # fmt: skip
    built = export_jobs.export_build(package_pk=package.pk)

    purge("--before", "2020-01-01")

    assert rows_of(study.pk)["studies"] == 0
    package = ExportPackage.objects.get(pk=built.pk)
    assert package.status == built.status and package.file_path == built.file_path
    assert vp.verify_package(Path(package.file_path), public_key_pem(checkpoints.signing_key())).valid
