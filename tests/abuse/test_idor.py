"""IDOR probes through the API: guessing another radiologist's record ids reveals nothing.

alice signed the report of one study, bob of another. bob walks every id-addressed record endpoint
with alice's ids (and a range of neighbouring ids): each answer must be 404, never her data, and a
list must never include her records. eve (no role) sees nothing at all. The review pages' own
probes (feedback, cases) are in tests/review_pages; this covers the REST surface.
"""

from __future__ import annotations

import pytest

from portal.records.models import AIOutput, SignedReport, Study
from tests.factories import ai_output_json, signed_report_json, study_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_studies(ris) -> dict[str, Study]:
    """ACC-A signed by alice, ACC-B signed by bob, each with an AI draft."""
    studies = {}
    for n, (accession, radiologist) in enumerate([("ACC-A", "alice"), ("ACC-B", "bob")], start=1):
        body = study_json(
            accession=accession, mrn=f"MRN-{n}", study_instance_uid=f"1.2.826.0.1.3680043.10.55.{n}"
        )
        assert ris.post("/api/v1/studies", body, format="json").status_code == 201
        assert (
            ris.post("/api/v1/ai-outputs", ai_output_json(accession=accession), format="json").status_code
            == 201
        )
        report = signed_report_json(accession=accession, radiologist=radiologist)
        assert ris.post("/api/v1/signed-reports", report, format="json").status_code == 201
        studies[radiologist] = Study.objects.get(accession_number=accession)
    return studies


def _alices_urls(study: Study) -> list[str]:
    output = AIOutput.objects.get(study=study)
    report = SignedReport.objects.get(study=study)
    return [
        f"/api/v1/studies/{study.pk}",
        f"/api/v1/ai-outputs/{output.pk}",
        f"/api/v1/signed-reports/{report.pk}",
    ]


def test_bob_cannot_read_alices_records_by_id(client_for, two_studies):
    bob = client_for("bob")
    for url in _alices_urls(two_studies["alice"]):
        response = bob.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert "ACC-A" not in response.content.decode()


def test_bob_lists_only_his_own_records(client_for, two_studies):
    bob = client_for("bob")
    for url in ("/api/v1/studies", "/api/v1/ai-outputs", "/api/v1/signed-reports"):
        response = bob.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert "ACC-A" not in body, url
        assert "ACC-B" in body, url


def test_walking_ids_finds_nothing_outside_bobs_own(client_for, two_studies):
    bob = client_for("bob")
    own = set(_alices_urls(two_studies["bob"]))
    for kind in ("studies", "ai-outputs", "signed-reports"):
        for pk in range(0, 12):
            url = f"/api/v1/{kind}/{pk}"
            status = bob.get(url).status_code
            assert status == (200 if url in own else 404), (url, status)


def test_an_account_without_a_role_sees_nothing(client_for, two_studies):
    eve = client_for("eve")
    for url in _alices_urls(two_studies["alice"]) + _alices_urls(two_studies["bob"]):
        assert eve.get(url).status_code in (403, 404), url
    for url in (
        "/api/v1/studies",
        "/api/v1/signed-reports",
        "/api/v1/legal/exports",
        "/api/v1/reinference-runs",
    ):
        response = eve.get(url)
        assert response.status_code in (403, 404) or "ACC-" not in response.content.decode(), url
