"""The models pages: registry list, model card with hashes and integrity, activation by the chair."""

from __future__ import annotations

import shutil

import pytest
from django.test import Client

from audit.log import SYSTEM
from audit.models import AuditEvent
from inference.registry import model_version_register_directory
from portal.records.models import ModelStatus, ModelVersion
from tests.model_fixtures import build_tiny_model, default_model_version  # noqa: F401

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert('x')</script>"


def test_the_list_shows_status_kinds_specialties_metrics_and_hash(page_for, tiny_model_version):
    tiny_model_version.metrics = {
        "facts_right_share": 0.976,
        "reports_exact": 0.85,
        "kinds": {"report_draft": {"chrf_mean": 0.8}},
        "evaluation": "greedy decoding",
    }
    tiny_model_version.save(update_fields=["metrics"])

    response = page_for("otto").get("/models/")

    body = response.content.decode()
    assert response.status_code == 200
    assert f"{tiny_model_version.name} {tiny_model_version.version}" in body
    assert f'data-testid="model-status-{tiny_model_version.pk}">Candidate<' in body
    assert "Report draft" in body and "report_draft" not in body  # kinds by their names
    assert "<dt>Facts right</dt><dd>97.6 %</dd>" in body and "<dt>Reports exact</dt><dd>0.85</dd>" in body
    assert "{" not in body.split('data-testid="models-table"')[1]  # no raw dictionary in the table
    assert "greedy decoding" not in body  # text is no headline figure
    assert tiny_model_version.artifact_sha256[:16] in body


def test_the_model_card_lists_every_artifact_hash_and_checks_integrity(page_for, tiny_model_version):
    response = page_for("lena").get(f"/models/{tiny_model_version.pk}/")

    body = response.content.decode()
    assert response.status_code == 200
    for name, sha in tiny_model_version.artifacts.items():
        assert name in body and sha in body
    assert "files match the registry" in body
    assert "random initialisation, for tests" in body  # lineage
    assert 'data-testid="model-activate"' not in body  # counsel reads, does not manage


def test_a_tampered_model_shows_its_integrity_failure(page_for, tmp_path):
    directory = tmp_path / "copy"
    shutil.copytree(build_tiny_model().artifact_dir, directory)
    mv = model_version_register_directory(directory=directory, actor=None, context=SYSTEM, version="0.0.9")
    with (directory / "config.json").open("a") as handle:
        handle.write(" ")

    body = page_for("carol").get(f"/models/{mv.pk}/").content.decode()

    assert "FAILED" in body and "changed config.json" in body


def test_the_chair_activates_a_version_and_the_registry_audits_it(page_for, tiny_model_version):
    client = page_for("dana")
    assert 'data-testid="model-activate"' in client.get(f"/models/{tiny_model_version.pk}/").content.decode()

    response = client.post(f"/models/{tiny_model_version.pk}/activate", follow=True)

    tiny_model_version.refresh_from_db()
    assert response.status_code == 200 and "is now active" in response.content.decode()
    assert tiny_model_version.status == ModelStatus.ACTIVE
    assert AuditEvent.objects.filter(
        action="model_version.activate", object_id=str(tiny_model_version.pk), actor_username="dana"
    ).exists()


def test_a_version_without_local_files_cannot_be_activated(page_for, other_version_factory):
    elsewhere = other_version_factory()

    response = page_for("dana").post(f"/models/{elsewhere.pk}/activate", follow=True)

    elsewhere.refresh_from_db()
    assert "no local artifacts" in response.content.decode()
    assert elsewhere.status == ModelStatus.CANDIDATE


@pytest.mark.parametrize("persona", ["carol", "otto", "lena", "alice", "eve"])
def test_only_the_chair_and_admins_activate(page_for, tiny_model_version, persona):
    response = page_for(persona).post(f"/models/{tiny_model_version.pk}/activate")

    tiny_model_version.refresh_from_db()
    assert response.status_code == 403
    assert tiny_model_version.status == ModelStatus.CANDIDATE


def test_activation_needs_the_csrf_token(personas, tiny_model_version):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas["dana"])

    response = client.post(f"/models/{tiny_model_version.pk}/activate")

    tiny_model_version.refresh_from_db()
    assert response.status_code == 403 and tiny_model_version.status == ModelStatus.CANDIDATE


def test_hostile_names_and_card_values_are_escaped(page_for):
    mv = ModelVersion.objects.create(
        name=HOSTILE[:100],
        version="1",
        metrics={"note": HOSTILE, HOSTILE: 0.5, "kinds": {HOSTILE: {HOSTILE: 1}}},
        lineage={"source": HOSTILE, "list": [HOSTILE]},
        card={HOSTILE: {"deep": {"deeper": {"deepest": {"x": [HOSTILE]}}}}},
    )

    listing = page_for("carol").get("/models/").content.decode()
    card = page_for("carol").get(f"/models/{mv.pk}/").content.decode()

    for body in (listing, card):
        assert "<script>alert" not in body
        assert "&lt;script&gt;" in body


def test_the_model_list_is_bounded_in_queries(page_for, other_version_factory):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    parent = other_version_factory(name="base", version="1")
    client = page_for("carol")
    client.get("/models/")
    counts = []
    for batch in (3, 30):
        for index in range(batch):
            ModelVersion.objects.create(name=f"many-{batch}", version=str(index), parent=parent)
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/models/").status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1] <= 8  # no query per version (the parent is joined)


def test_unknown_models_are_404_and_radiologists_403(page_for):
    assert page_for("carol").get("/models/987654/").status_code == 404
    assert page_for("alice").get("/models/").status_code == 403
    assert page_for("eve").get("/models/987654/").status_code == 403


def _card_sections(body: str) -> str:
    """The model page up to the full-card JSON (which is JSON on purpose)."""
    return body.split('data-testid="model-summary"')[1].split("Full model card (JSON)")[0]


def test_the_shipped_model_card_reads_as_tables_not_raw_dictionaries(page_for, default_model_version):  # noqa: F811
    body = page_for("carol").get(f"/models/{default_model_version.pk}/").content.decode()

    sections = _card_sections(body)
    for raw in ("{&#x27;", "{&quot;", "[&quot;", "[&#x27;", "': {", '": {'):
        assert raw not in sections, raw
    assert 'class="list card-matrix"' in sections
    assert "Report draft: discrepancies by category" in sections and "Missed finding" in sections
    share = default_model_version.metrics["facts_right_share"]  # the shipped default's own card
    assert f"{share * 100:.1f} %" in sections  # the share of facts right, as a percentage
    served = sections.split('data-testid="kinds-served"')[1].split("</td>")[0]
    not_served = sections.split('data-testid="kinds-not-served"')[1].split("</td>")[0]
    assert "Report draft" in served and "Patient letter" not in served
    assert "Patient letter" in not_served


def test_a_version_that_names_no_kinds_lists_none_as_not_served(page_for, other_version_factory):
    elsewhere = other_version_factory()

    body = page_for("carol").get(f"/models/{elsewhere.pk}/").content.decode()

    assert 'data-testid="kinds-not-served"' not in body
    assert "No metrics recorded." in body and "No lineage recorded." in body
