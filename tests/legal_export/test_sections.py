"""The QA and re-inference sections: reviews, feedback (with acknowledgement) and re-inference results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.utils import timezone

from audit import checkpoints
from audit import verify_package as vp
from audit.log import AuditContext
from audit.signing import public_key_pem
from inference.models import ReinferenceChunk, ReinferenceResult, ReinferenceRun
from portal.legal import export_jobs
from portal.records.models import AIOutput, SignedReport
from portal.review.models import Comparison, Feedback, Review
from tests.legal_export.conftest import read_zip

pytestmark = pytest.mark.django_db


def test_reviews_feedback_and_reinference_are_exported(department, personas) -> None:
    comparison = Comparison.objects.get(study__accession_number="ACC-7001")
    review = Review.objects.create(
        comparison=comparison, reviewer=personas["carol"], radpeer="3b", comment="Missed pneumothorax.",
        radiologist_erred=True,
    )
    Feedback.objects.create(
        review=review,
        comparison=comparison,
        radiologist=personas["alice"],
        message="Please review the apex.",
        acknowledged_at=timezone.now(),
    )
    output = AIOutput.objects.get(study=comparison.study)
    run = ReinferenceRun.objects.create(model_version=output.model_version, chunk_size=10, total=1)
    chunk = ReinferenceChunk.objects.create(run=run, index=0, items=[comparison.study_id])
    ReinferenceResult.objects.create(
        run=run,
        chunk=chunk,
        study=comparison.study,
        original=output,
        reference=SignedReport.objects.get(study=comparison.study),
        status="ok",
        text="Right pneumothorax.",
        radpeer_suggested="1",
        original_radpeer="3b",
    )
    package = export_jobs.export_request(
        actor=personas["lena"],
        context=AuditContext(channel="test"),
        matter_reference="M-QA",
        reason="QA history",
        accession_numbers=["ACC-7001"],
    )
    built = export_jobs.export_build(package_pk=package.pk)
    path = Path(built.file_path)
    assert vp.verify_package(path, public_key_pem(checkpoints.signing_key())).valid
    files = read_zip(path)
    reviews = json.loads(files["records/ACC-7001/qa_reviews.json"])
    assert reviews[0]["radpeer"] == "3b" and reviews[0]["reviewer"] == "carol"
    assert (reviews[0]["radiologist_erred"], reviews[0]["ai_erred"]) == (True, False)
    assert reviews[0]["feedback"][0]["acknowledged_at"] is not None
    results = json.loads(files["records/ACC-7001/reinference.json"])
    assert results[0]["text"] == "Right pneumothorax." and results[0]["original"]["radpeer"] == "3b"
    manifest = json.loads(files["manifest.json"])
    assert manifest["counts"]["qa_reviews"] == 1 and manifest["counts"]["reinference_results"] == 1


def test_the_timeline_says_who_erred_and_an_unscored_review_is_not_scored() -> None:
    from types import SimpleNamespace

    from portal.legal.export.timeline import _attribution

    def review(**flags: bool) -> SimpleNamespace:
        return SimpleNamespace(
            **{"radiologist_erred": False, "ai_erred": False, "carried_ai_error": False, **flags}
        )

    assert _attribution(review(ai_erred=True)) == "the AI draft erred; the signed report was right"
    assert _attribution(review(radiologist_erred=True)) == "the signed report erred"
    assert _attribution(review(radiologist_erred=True, ai_erred=True, carried_ai_error=True)) == (
        "an AI error was carried into the signed report"
    )
    assert _attribution(review()) == "no error found in the signed report"
