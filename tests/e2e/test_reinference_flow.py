"""Re-inference in a real browser: the chair launches a run and watches the real worker finish it.

The cohort's drafts were written by the tiny model itself, so the run must reproduce them byte for
byte; the progress bar is updated by htmx polling until the run ends, then the results appear.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.e2e.browser import login_as, shoot
from tests.model_fixtures import default_model_version, tiny_model_version  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STUDIES = 6
SENTENCES = ["Small left pleural effusion.", "Right lower lobe consolidation.", "The heart is enlarged."]


def _cohort(model_version, radiologist) -> list[str]:
    """Signed studies whose drafts the model itself generated (so the run must reproduce them)."""
    from inference import runtime
    from portal.records.models import AIOutput, Patient, SignedReport, Study, sha256_text

    start = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    inputs = [
        {
            "specialty": "chest",
            "modality": "CR",
            "body_part": "CHEST",
            "study_description": "XR CHEST 2 VIEWS",
            "indication": ["Cough.", "Fever."][i % 2],
            "prior_report_accession": None,
            "findings": [
                {"concept": "pleural_effusion", "display": "pleural effusion", "laterality": "left"}
            ],
            "negatives": [{"concept": "pneumothorax", "display": "pneumothorax"}] if i % 2 else [],
        }
        for i in range(STUDIES)
    ]
    texts = [g.text or "(empty)" for g in runtime.generate(model_version, "report_draft", inputs)]
    accessions = []
    for i in range(STUDIES):
        patient = Patient.objects.create(mrn=f"MRN-E2E-R{i}", family_name="Example")
        study = Study.objects.create(
            accession_number=f"ACC-E2E-R{i}",
            patient=patient,
            modality="CR",
            specialty="chest",
            study_datetime=start + dt.timedelta(days=i),
        )
        when = start + dt.timedelta(days=i, minutes=5)
        AIOutput.objects.create(
            study=study, kind="report_draft", model_version=model_version, inputs=inputs[i],
            generation_settings={"decoding": "greedy"}, text=texts[i], text_sha256=sha256_text(texts[i]),
            payload_sha256=sha256_text(f"e2e-r-{i}"), latency_ms=35.0, completion_tokens=20,
            generated_at=when,
        )  # fmt: skip
        report = f"FINDINGS:\n{SENTENCES[i % 3]}\n\nIMPRESSION:\n{SENTENCES[i % 3]}"
        SignedReport.objects.create(
            study=study, radiologist=radiologist, sections={"findings": SENTENCES[i % 3]}, text=report,
            text_sha256=sha256_text(report), payload_sha256=sha256_text(f"e2e-rr-{i}"),
            signed_at=when + dt.timedelta(hours=1),
        )  # fmt: skip
        accessions.append(study.accession_number)
    return accessions


def test_the_chair_launches_a_run_and_watches_it_reach_100_percent(page, users, tiny_model_version):  # noqa: F811
    from inference.models import ReinferenceRun, RunStatus
    from portal.records.models import ModelVersion

    accessions = _cohort(tiny_model_version, users["alice"])
    polls: list[dict[str, str]] = []
    page.on("request", lambda request: polls.append(request.headers) if "/progress" in request.url else None)
    login_as(page, "dana")

    # A version that ran elsewhere (known only from the outputs it produced) sits beside it.
    ModelVersion.objects.create(name="vendor-chest", version="2.3")
    page.goto(f"/models/{tiny_model_version.pk}/")
    assert "files match the registry" in page.locator("[data-testid=integrity]").inner_text()
    with page.expect_navigation():
        page.click("[data-testid=model-activate]")
    assert page.locator("[data-testid=model-status]").inner_text() == "Active"
    page.click("[data-testid=nav-models]")
    assert page.locator(f"[data-testid=model-status-{tiny_model_version.pk}]").inner_text() == "Active"
    shoot(page, "models")

    page.click("[data-testid=nav-reinference]")
    page.select_option("#id_model_version", str(tiny_model_version.pk))
    page.select_option("#id_specialty", "chest")
    page.fill("#id_chunk_size", "2")
    with page.expect_navigation():
        page.click("[data-testid=run-launch]")

    assert re.search(r"/reinference/\d+/$", page.url), page.url
    run = ReinferenceRun.objects.get()
    assert run.total == STUDIES
    started_active = page.locator("[data-testid=run-progress]").get_attribute("data-status") in (
        "queued",
        "running",
    )
    # The bar is swapped in by htmx every second; it must reach its maximum through the real worker.
    page.wait_for_function(
        "() => { const bar = document.querySelector('[data-testid=run-bar]');"
        " return bar && bar.max > 0 && bar.value === bar.max; }",
        timeout=180_000,
    )
    page.wait_for_selector("[data-testid=run-finished]")
    assert page.locator("[data-testid=run-percent]").inner_text() == "100.0%"
    assert page.locator("[data-testid=run-status]").inner_text() == "Completed"
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.done + run.failed == STUDIES
    if started_active:  # the bar moved by polling, and polling never counted as the user's activity
        assert polls and all(headers.get("x-concordance-background") == "1" for headers in polls)

    page.click("[data-testid=run-results-link]")
    page.wait_for_selector("[data-testid=run-summary]")
    assert "100%" in page.locator("[data-testid=reproduction-rate]").inner_text()
    table = page.locator("[data-testid=results-table]").inner_text()
    assert all(accession in table for accession in accessions)
    assert (
        page.locator("svg#chart-categories").is_visible() and page.locator("svg#chart-radpeer").is_visible()
    )
    shoot(page, "reinference-run")
    assert not page.csp_violations and not page.errors


def test_other_roles_cannot_launch_or_open_runs(page, users, tiny_model_version):  # noqa: F811
    login_as(page, "carol")
    page.goto("/reinference/")
    assert page.locator("[data-testid=runs-table]").is_visible()
    assert page.locator("[data-testid=run-form]").count() == 0
    page.click("[data-testid=logout]")

    for persona in ("alice", "lena"):
        login_as(page, persona)
        response = page.goto("/reinference/")
        assert response is not None and response.status == 403, persona
        page.goto("/")
        page.click("[data-testid=logout]")


def test_model_pages_fit_a_1366_window_and_the_form_offers_only_kinds_a_version_drafts(
    page,
    users,
    default_model_version,  # noqa: F811
    tiny_model_version,  # noqa: F811
):
    _cohort(tiny_model_version, users["alice"])  # CR studies: the modality list comes from them
    tiny_model_version.kinds = ["report_draft", "patient_letter"]
    tiny_model_version.save(update_fields=["kinds"])
    page.set_viewport_size({"width": 1366, "height": 768})
    login_as(page, "dana")

    for path in ("/models/", f"/models/{default_model_version.pk}/", "/reinference/"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"{path} is {width} px wide"
    page.goto(f"/models/{default_model_version.pk}/")
    assert "Patient letter" in page.locator("[data-testid=kinds-not-served]").inner_text()
    # Metrics per kind, discrepancies by category and the samples (a fused variant's card shows its own).
    assert page.locator("table.card-matrix").count() >= 3
    assert "Report draft: discrepancies by category" in page.content()

    page.goto("/reinference/")
    offered = "() => [...document.querySelectorAll('#id_kind option:enabled')].map(o => o.value)"
    page.select_option("#id_model_version", str(default_model_version.pk))
    assert page.evaluate(offered) == ["report_draft", "history_summary", "prior_comparison"]
    page.select_option("#id_model_version", str(tiny_model_version.pk))
    assert page.evaluate(offered) == ["report_draft", "patient_letter"]
    page.select_option("#id_kind", "patient_letter")
    page.select_option("#id_model_version", str(default_model_version.pk))
    assert page.eval_on_selector("#id_kind", "select => select.value") == "report_draft"  # moved off
    assert page.locator("#id_modality option").all_inner_texts() == ["Any", "CR — Computed radiography"]
    assert not page.csp_violations and not page.errors
