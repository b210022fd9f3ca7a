"""The legal page in a real browser: counsel searches, places a hold, and a real worker builds the export."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.e2e.browser import login_as, shoot

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _patient_with_studies(radiologist) -> list[str]:
    """Two signed studies of one patient (and one of another), each with an AI draft."""
    from portal.records.models import AIOutput, ModelVersion, Patient, SignedReport, Study, sha256_text

    model = ModelVersion.objects.create(name="vendor-chest", version="2.3")
    start = dt.datetime(2026, 2, 3, 9, 0, tzinfo=dt.UTC)
    accessions = []
    for i, mrn in enumerate(["MRN-E2E-L1", "MRN-E2E-L1", "MRN-E2E-L2"]):
        patient, _ = Patient.objects.get_or_create(
            mrn=mrn, defaults={"family_name": "Sample", "given_name": "Pat"}
        )
        study = Study.objects.create(
            accession_number=f"ACC-E2E-L{i}", patient=patient, modality="CR", specialty="chest",
            study_datetime=start + dt.timedelta(days=i), description="XR CHEST 2 VIEWS",
        )  # fmt: skip
        draft = "FINDINGS:\nSmall left pleural effusion.\n\nIMPRESSION:\nSmall left pleural effusion."
        signed = "FINDINGS:\nNo pleural effusion.\n\nIMPRESSION:\nNormal chest."
        when = start + dt.timedelta(days=i, minutes=5)
        AIOutput.objects.create(
            study=study, kind="report_draft", model_version=model, inputs={"indication": "Cough."},
            generation_settings={}, text=draft, text_sha256=sha256_text(draft),
            payload_sha256=sha256_text(f"e2e-l-{i}"), generated_at=when,
        )  # fmt: skip
        SignedReport.objects.create(
            study=study, radiologist=radiologist, sections={"findings": signed}, text=signed,
            text_sha256=sha256_text(signed), payload_sha256=sha256_text(f"e2e-ls-{i}"),
            signed_at=when + dt.timedelta(hours=1),
        )  # fmt: skip
        accessions.append(study.accession_number)
    return accessions


def test_counsel_searches_holds_and_exports(page, users):
    from audit.models import AuditEvent
    from portal.legal.models import ExportPackage, LegalHold

    accessions = _patient_with_studies(users["alice"])
    login_as(page, "lena")
    page.click("[data-testid=nav-legal]")

    page.fill("#search-patient_mrn", "MRN-E2E-L1")
    with page.expect_navigation():
        page.click("[data-testid=search-submit]")
    assert "MRN" not in page.url  # the search went in the body, not the address
    assert page.locator("[data-testid=result-count]").inner_text().startswith("2 studies")
    results = page.locator("[data-testid=search-results]").inner_text()
    assert accessions[0] in results and accessions[1] in results and accessions[2] not in results

    page.check("#hold-scope_1")  # listed studies
    page.fill("#hold-matter_reference", "Smith v. General Hospital")
    page.fill("#hold-reason", "Claim letter received; preserve the chest studies.")
    page.fill("#hold-accession_numbers", f"{accessions[0]}\n{accessions[1]}")
    with page.expect_navigation():
        page.click("[data-testid=hold-submit]")
    hold = LegalHold.objects.get()
    assert page.locator(f"[data-testid=hold-state-{hold.pk}]").inner_text() == "Active"

    page.fill("#export-matter_reference", "Smith v. General Hospital")
    page.fill("#export-reason", "Production to opposing counsel.")
    page.fill("#export-patient_mrn", "MRN-E2E-L1")
    with page.expect_navigation():
        page.click("[data-testid=export-submit]")
    package = ExportPackage.objects.get()
    # The list polls itself while the worker builds; it shows the download link once ready.
    page.wait_for_selector(f"[data-testid=export-download-{package.pk}]", timeout=180_000)
    assert page.locator(f"[data-testid=export-status-{package.pk}]").inner_text() == "Ready"
    page.fill("#search-patient_mrn", "MRN-E2E-L1")
    with page.expect_navigation():
        page.click("[data-testid=search-submit]")
    assert page.locator(f"[data-testid=held-{accessions[0]}]").inner_text() == "held"
    shoot(page, "legal")

    with page.expect_download() as download:
        page.click(f"[data-testid=export-download-{package.pk}]")
    assert download.value.suggested_filename.endswith(".zip")
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"legal.search", "legal_hold.place", "export.request", "export.download"} <= actions
    assert not page.csp_violations and not page.errors


def test_other_roles_are_refused_the_legal_page(page, users):
    for persona in ("otto", "dana", "alice"):
        login_as(page, persona)
        response = page.goto("/legal/")
        assert response is not None and response.status == 403, persona
        page.goto("/")
        assert page.locator("[data-testid=nav-legal]").count() == 0
        page.click("[data-testid=logout]")
