"""End to end through a real worker: a signed report arrives, a worker stores the discrepancies."""

from __future__ import annotations

import time

import pytest

from audit.models import AuditEvent
from portal.review.models import Comparison
from tests.factories import ai_output_json, signed_report_json, study_json

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def _wait_for(predicate, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_a_worker_compares_the_draft_with_the_signed_report(celery_worker_process, ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    ris.post(
        "/api/v1/ai-outputs",
        ai_output_json(
            text="FINDINGS:\nSmall left pleural effusion.\n\nIMPRESSION:\nSmall left pleural effusion."
        ),
        format="json",
    )
    ris.post(
        "/api/v1/signed-reports",
        signed_report_json(
            sections={
                "findings": "Small right pleural effusion. Right apical pneumothorax.",
                "impression": "Small right pleural effusion. Right apical pneumothorax.",
            }
        ),
        format="json",
    )

    assert _wait_for(lambda: Comparison.objects.exists()), "the worker did not store a comparison"
    comparison = Comparison.objects.get()
    categories = set(comparison.discrepancies.values_list("category", flat=True))
    assert {"location", "missed_finding"} <= categories
    assert comparison.radpeer_suggested == "3b"  # a missed pneumothorax is critical
    missed = comparison.discrepancies.get(category="missed_finding")
    reference = comparison.reference.text
    assert "pneumothorax" in reference[missed.reference_start : missed.reference_end].lower()
    assert AuditEvent.objects.filter(action="comparison.create", study_id=comparison.study_id).count() == 1
