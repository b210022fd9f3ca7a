"""The launch form's controlled lists: kinds from the model cards, modalities from the stored studies."""

from __future__ import annotations

import re

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from inference import registry
from inference.models import ReinferenceRun
from inference.reinference import runs
from inference.reinference.cohort import CohortFilter
from portal.core.errors import InvalidRecord
from portal.records.models import ModelVersion
from tests.model_fixtures import build_tiny_model

pytestmark = pytest.mark.django_db

RUNS = "/reinference/"


def _options(body: str, name: str) -> dict[str, str]:
    """``value -> the whole <option ...>label`` of one select of the launch form."""
    select = re.search(rf'<select name="{name}".*?</select>', body, re.S)
    assert select, name
    return {
        m.group(1): m.group(0) for m in re.finditer(r'<option value="([^"]*)"[^>]*>[^<]*', select.group(0))
    }


def _restrict(mv: ModelVersion, kinds: list[str]) -> ModelVersion:
    mv.kinds = kinds
    mv.save(update_fields=["kinds"])
    return mv


def _letter_writer() -> ModelVersion:
    """A second runnable version (the tiny model's files) that drafts patient letters and reports."""
    return registry.model_version_register_directory(
        directory=build_tiny_model().artifact_dir,
        actor=None,
        context=SYSTEM,
        version="0.0.2-letters",
        kinds=["report_draft", "patient_letter"],
    )


def test_the_kind_list_offers_only_what_a_runnable_version_can_draft(page_for, tiny_model_version):
    _restrict(tiny_model_version, ["report_draft", "history_summary"])

    kinds = _options(page_for("dana").get(RUNS).content.decode(), "kind")

    assert set(kinds) == {"report_draft", "history_summary"}
    assert f'data-versions="{tiny_model_version.pk}"' in kinds["report_draft"]

    letters = _letter_writer()
    kinds = _options(page_for("dana").get(RUNS).content.decode(), "kind")

    assert set(kinds) == {"report_draft", "history_summary", "patient_letter"}
    assert f'data-versions="{letters.pk}"' in kinds["patient_letter"]  # only the version that drafts it
    assert f'data-versions="{letters.pk} {tiny_model_version.pk}"' in kinds["report_draft"]


def test_the_page_loads_the_script_that_narrows_the_kinds(page_for, tiny_model_version):
    body = page_for("dana").get(RUNS).content.decode()
    assert "inference/run-form.js" in body
    assert "inference/run-form.js" not in page_for("carol").get(RUNS).content.decode()  # no form, no script


def test_a_kind_the_chosen_version_cannot_draft_is_refused_with_what_it_drafts(
    page_for, tiny_model_version, make_studies
):
    make_studies(2, tiny_model_version)
    _restrict(tiny_model_version, ["report_draft", "history_summary"])
    client = page_for("dana")

    nobody_drafts = client.post(RUNS, {"model_version": tiny_model_version.pk, "kind": "patient_letter"})
    _letter_writer()
    this_one_cannot = client.post(RUNS, {"model_version": tiny_model_version.pk, "kind": "patient_letter"})

    assert nobody_drafts.status_code == 400
    assert "Select a valid choice" in nobody_drafts.content.decode()
    assert this_one_cannot.status_code == 400
    assert (
        f"{tiny_model_version.name} {tiny_model_version.version} cannot draft a patient letter; "
        "it drafts: Report draft, History summary." in this_one_cannot.content.decode()
    )
    assert not ReinferenceRun.objects.exists()
    assert not AuditEvent.objects.filter(action="reinference_run.create").exists()


def test_the_modality_list_is_the_codes_the_studies_carry(page_for, tiny_model_version, make_studies):
    make_studies(2, tiny_model_version, modality="CR")
    make_studies(1, tiny_model_version, modality="CT")
    make_studies(1, tiny_model_version, modality="zz9")  # an unnamed code is listed as written

    modalities = _options(page_for("dana").get(RUNS).content.decode(), "modality")

    assert list(modalities) == ["", "CR", "CT", "ZZ9"]
    assert modalities["CR"].endswith(">CR — Computed radiography")
    assert modalities["ZZ9"].endswith(">ZZ9")


@pytest.mark.parametrize("modality", ["XR", "cr", "CR' OR 1=1--", "<b>CR</b>", "C" * 5000])
def test_a_modality_not_in_the_list_is_refused_and_nothing_is_written(
    page_for, tiny_model_version, make_studies, modality
):
    make_studies(2, tiny_model_version, modality="CR")

    response = page_for("dana").post(
        RUNS, {"model_version": tiny_model_version.pk, "kind": "report_draft", "modality": modality}
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "is not a modality of the stored studies" in body
    assert "<b>CR</b>" not in body
    assert not ReinferenceRun.objects.exists()


def test_a_listed_modality_launches_a_run_over_its_studies(page_for, tiny_model_version, make_studies):
    make_studies(2, tiny_model_version, modality="CR")
    make_studies(3, tiny_model_version, modality="CT")

    response = page_for("dana").post(
        RUNS, {"model_version": tiny_model_version.pk, "kind": "report_draft", "modality": "CR"}
    )

    run = ReinferenceRun.objects.get()
    assert response.status_code == 302
    assert run.total == 2 and run.cohort_filter["modality"] == "CR"


def test_the_api_and_the_command_are_told_which_modalities_the_data_has(tiny_model_version, make_studies):
    make_studies(1, tiny_model_version, modality="CR")
    make_studies(1, tiny_model_version, modality="MR")

    with pytest.raises(
        InvalidRecord, match=r"No study has modality XR; the studies here have CR, MR\."
    ) as err:
        runs.reinference_run_create(
            model_version=tiny_model_version, cohort=CohortFilter(modality="XR"), actor=None, context=SYSTEM
        )

    assert err.value.field == "modality"
    assert not ReinferenceRun.objects.exists()


def test_the_run_pages_name_the_cohort_filter_in_words(page_for, tiny_model_version, make_studies):
    make_studies(3, tiny_model_version, modality="CR")
    client = page_for("dana")
    client.post(
        RUNS,
        {
            "model_version": tiny_model_version.pk,
            "kind": "report_draft",
            "modality": "CR",
            "specialty": "chest",
            "date_from": "2026-01-01",
            "sample": "2",
            "seed": "0",
        },
    )
    run = ReinferenceRun.objects.get()

    for body in (client.get(RUNS).content.decode(), client.get(f"{RUNS}{run.pk}/").content.decode()):
        for chip in ("Modality: CR — Computed radiography", "Specialty: Chest", "Studies from: 2026-01-01"):
            assert chip in body
        assert "Random sample of: 2" in body and "Seed: 0" in body
        assert 'class="chip">date_from' not in body and 'class="chip">modality' not in body
