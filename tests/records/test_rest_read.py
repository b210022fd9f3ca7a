"""Reading the record through the API: filters, pagination, who sees what, and the access log."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tests.factories import ai_output_json, signed_report_json, study_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_studies(ris):
    """ACC1 signed by alice (chest CR), ACC2 signed by bob (neuro CT)."""
    ris.post("/api/v1/studies", study_json(accession="ACC1", study_instance_uid="1.2.3.1"), format="json")
    ris.post(
        "/api/v1/studies",
        study_json(
            accession="ACC2",
            mrn="MRN0002",
            study_instance_uid="1.2.3.2",
            modality="CT",
            specialty="neuro",
            body_part="HEAD",
        ),
        format="json",
    )
    ris.post("/api/v1/ai-outputs", ai_output_json(accession="ACC1"), format="json")
    ris.post(
        "/api/v1/signed-reports", signed_report_json(accession="ACC1", radiologist="alice"), format="json"
    )
    ris.post("/api/v1/signed-reports", signed_report_json(accession="ACC2", radiologist="bob"), format="json")


def test_reviewers_list_every_study_and_filter_by_modality(client_for, two_studies):
    carol = client_for("carol")

    everything = carol.get("/api/v1/studies").json()["results"]
    ct_only = carol.get("/api/v1/studies", {"modality": "CT"}).json()["results"]

    assert {s["accession_number"] for s in everything} == {"ACC1", "ACC2"}
    assert [s["accession_number"] for s in ct_only] == ["ACC2"]


def test_a_radiologist_sees_only_the_studies_they_signed(client_for, two_studies):
    alice = client_for("alice")

    listed = alice.get("/api/v1/studies").json()["results"]
    reports = alice.get("/api/v1/signed-reports").json()["results"]

    assert [s["accession_number"] for s in listed] == ["ACC1"]
    assert [r["accession_number"] for r in reports] == ["ACC1"]


def test_another_radiologists_study_is_404_not_403(client_for, two_studies):
    from portal.records.models import Study

    bobs = Study.objects.get(accession_number="ACC2")

    response = client_for("alice").get(f"/api/v1/studies/{bobs.pk}")

    assert response.status_code == 404  # existence of another doctor's case is itself private


def test_someone_without_a_role_reads_nothing(client_for, two_studies):
    assert client_for("eve").get("/api/v1/studies").status_code == 403


def test_every_read_is_in_the_access_log(client_for, two_studies, personas):
    from portal.records.models import Study

    study = Study.objects.get(accession_number="ACC1")
    client_for("lena").get(f"/api/v1/studies/{study.pk}")

    event = AuditEvent.objects.filter(action="study.view").get()
    assert event.actor_id == personas["lena"].pk
    assert event.study_id == study.pk and event.patient_id == study.patient_id
    assert event.client_address == "127.0.0.1"
    assert event.channel == f"GET /api/v1/studies/{study.pk}"


def test_lists_paginate_by_cursor(client_for, ris):
    for n in range(5):
        ris.post(
            "/api/v1/studies", study_json(accession=f"P{n}", study_instance_uid=f"1.9.{n}"), format="json"
        )
    carol = client_for("carol")

    first = carol.get("/api/v1/studies", {"page_size": 2}).json()
    second = carol.get(first["next"]).json()

    assert [s["accession_number"] for s in first["results"]] == ["P4", "P3"]
    assert [s["accession_number"] for s in second["results"]] == ["P2", "P1"]


def test_ai_outputs_filter_by_model_and_kind(client_for, two_studies):
    carol = client_for("carol")

    hits = carol.get("/api/v1/ai-outputs", {"model_name": "concordance-chest", "kind": "report_draft"}).json()
    misses = carol.get("/api/v1/ai-outputs", {"kind": "patient_letter"}).json()

    assert len(hits["results"]) == 1 and hits["results"][0]["inputs"]["indication"] == "Cough."
    assert misses["results"] == []


def test_a_bad_date_filter_is_400(client_for, two_studies):
    assert client_for("carol").get("/api/v1/studies", {"date_from": "03/04/2026"}).status_code == 400


def test_the_openapi_schema_is_served(client_for):
    response = client_for("carol").get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    assert "/api/v1/ai-outputs" in response.json()["paths"]
