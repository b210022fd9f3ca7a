"""POST /api/v1/drafts: the local model drafts a study now; the draft is stored with its provenance."""

from __future__ import annotations

import json

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from inference import registry, runtime
from portal.records.models import AIOutput, ModelStatus
from tests.factories import study_json

pytestmark = pytest.mark.django_db

URL = "/api/v1/drafts"
INPUTS = {
    "indication": "Cough and fever.",
    "findings": [{"concept": "pleural_effusion", "display": "pleural effusion", "laterality": "left"}],
    "negatives": [{"concept": "pneumothorax", "display": "pneumothorax"}],
}


@pytest.fixture
def study(ris):
    response = ris.post("/api/v1/studies", study_json(), format="json")
    assert response.status_code == 201
    return response.json()


@pytest.fixture
def active_model(tiny_model_version):
    return registry.model_version_activate(model_version=tiny_model_version, actor=None, context=SYSTEM)


def draft(client, **overrides):
    body = {"study": "ACC1001", "kind": "report_draft", "inputs": INPUTS}
    body.update(overrides)
    return client.post(URL, body, format="json")


def nothing_stored():
    return not AIOutput.objects.exists()


def test_the_integration_account_gets_a_stored_draft_with_provenance(ris, study, active_model):
    response = draft(ris)
    assert response.status_code == 201, response.content
    body = response.json()
    output = AIOutput.objects.get(pk=body["id"])
    assert body["text"] == output.text and output.text
    assert (body["model_name"], body["model_version"]) == (active_model.name, active_model.version)
    assert output.model_version == active_model
    # The stored inputs are what the model saw: the caller's plus the study's own facts.
    assert output.inputs["indication"] == INPUTS["indication"]
    assert output.inputs["specialty"] == "chest" and output.inputs["modality"] == "CR"
    assert output.inputs["study_description"] == "XR CHEST 2 VIEWS"
    assert output.generation_settings == runtime.generation_settings(active_model)
    assert output.prompt_tokens > 0 and output.completion_tokens > 0 and output.latency_ms >= 0
    event = AuditEvent.objects.get(action="ai_output.create", object_id=str(output.pk))
    assert event.actor_username == "ris" and event.channel == "POST /api/v1/drafts"


def test_a_stored_draft_is_reproduced_from_its_stored_inputs(ris, study, active_model):
    first = draft(ris).json()
    again = runtime.generate(active_model, "report_draft", [AIOutput.objects.get(pk=first["id"]).inputs])
    assert again[0].text == first["text"]
    second = draft(ris).json()
    assert second["id"] != first["id"] and second["text"] == first["text"]


def test_a_radiologist_may_draft_a_study_by_its_id(client_for, study, active_model):
    response = draft(client_for("alice"), study=study["id"])
    assert response.status_code == 201, response.content


def test_a_named_active_model_is_used(ris, study, active_model):
    by_id = draft(ris, model_version=active_model.pk)
    by_name = draft(ris, model_version=f"{active_model.name}:{active_model.version}")
    assert by_id.status_code == by_name.status_code == 201


@pytest.mark.parametrize("persona", ["carol", "dana", "lena", "otto", "eve"])
def test_other_roles_are_refused(client_for, study, active_model, persona):
    response = draft(client_for(persona))
    assert response.status_code == 403
    assert nothing_stored()
    assert AuditEvent.objects.filter(action="access.denied").exists()


def test_anonymous_requests_are_refused(client_for, study, active_model):
    assert draft(client_for(None)).status_code in (401, 403)
    assert nothing_stored()


def test_unknown_study_or_model_is_404(ris, study, active_model):
    assert draft(ris, study="NOPE").status_code == 404
    assert draft(ris, study=987654).status_code == 404
    assert draft(ris, model_version="ghost:9").status_code == 404
    assert draft(ris, model_version=987654).status_code == 404
    assert draft(ris, model_version="no-colon").status_code == 404
    assert nothing_stored()


def test_without_an_active_model_for_the_study_it_is_409(ris, study, tiny_model_version):
    response = draft(ris)
    assert response.status_code == 409 and response.json()["error"] == "model_unavailable"
    named = draft(ris, model_version=tiny_model_version.pk)  # a candidate does not draft clinically
    assert named.status_code == 409
    assert nothing_stored()


def test_a_model_not_serving_the_kind_or_specialty_is_409(ris, study, tiny_copy):
    mv = registry.model_version_register_directory(
        directory=tiny_copy,
        actor=None,
        context=SYSTEM,
        name="neuro-letters",
        kinds=["patient_letter"],
        specialties=["neuro"],
        status=ModelStatus.ACTIVE,
    )
    assert draft(ris, model_version=mv.pk).status_code == 409
    assert draft(ris, model_version=mv.pk, kind="patient_letter").status_code == 409
    assert draft(ris, kind="patient_letter").status_code == 409  # nothing serves chest letters
    assert nothing_stored()


def test_a_version_known_only_from_ingestion_cannot_draft(ris, study):
    ris.post(
        "/api/v1/ai-outputs",
        {
            "accession_number": "ACC1001",
            "kind": "report_draft",
            "model_name": "vendor",
            "model_version": "1",
            "text": "No acute findings.",
            "generated_at": "2026-03-04T10:05:00Z",
        },
        format="json",
    )
    assert draft(ris, model_version="vendor:1").status_code == 409


@pytest.mark.parametrize(
    "overrides",
    [
        {"inputs": "pleural effusion"},
        {"inputs": {"findings": "pleural effusion"}},
        {"inputs": {"findings": [{"laterality": "left"}]}},
        {"inputs": {"findings": [{"concept": "x"}] * 65}},
        {"inputs": {"indication": "x" * 600}},
        {"inputs": {"indication": {"nested": True}}},
        {"kind": "haiku"},
        {"study": ["ACC1001"]},
        {"study": ""},
        {"study": True},
        {"model_version": False},
        {"model_version": "x" * 500},
        {"speciality": "chest"},
    ],
)
def test_bad_requests_are_400_with_nothing_written(ris, study, active_model, overrides):
    response = draft(ris, **overrides)
    assert response.status_code == 400, response.content
    assert nothing_stored()


def test_a_body_without_inputs_is_400(ris, study, active_model):
    assert ris.post(URL, {"study": "ACC1001"}, format="json").status_code == 400
    assert ris.post(URL, "not json", content_type="application/json").status_code == 400
    assert nothing_stored()


def test_an_oversized_body_is_413(ris, study, active_model):
    body = {"study": "ACC1001", "inputs": {**INPUTS, "padding": "x" * 70_000}}
    assert ris.post(URL, body, format="json").status_code == 413
    assert nothing_stored()


def test_inputs_too_long_for_the_model_are_413(ris, study, active_model):
    findings = [{"concept": f"finding {i}", "location": "y" * 300} for i in range(30)]
    response = draft(ris, inputs={"findings": findings})
    assert response.status_code == 413
    assert nothing_stored()


def test_a_tampered_model_refuses_with_503_and_is_audited(ris, study, tiny_copy):
    mv = registry.model_version_register_directory(
        directory=tiny_copy, actor=None, context=SYSTEM, status=ModelStatus.ACTIVE
    )
    (tiny_copy / "tokenizer.json").write_text(json.dumps({"swapped": True}))
    response = draft(ris)
    assert response.status_code == 503 and response.json()["error"] == "model_integrity_failure"
    assert AuditEvent.objects.filter(action="model_version.integrity_failure", object_id=str(mv.pk)).exists()
    assert nothing_stored()


def test_an_empty_draft_is_not_stored(ris, study, active_model, monkeypatch):
    monkeypatch.setattr(runtime, "generate", lambda mv, kind, inputs: [runtime.Generation("  ", 5, 1, 1.0)])
    response = draft(ris)
    assert response.status_code == 422 and response.json()["error"] == "empty_draft"
    assert nothing_stored()


def test_hostile_text_is_stored_verbatim_and_returned_as_json(ris, study, active_model):
    hostile = "<script>alert('x')</script>\"; DROP TABLE records_aioutput;-- &amp;"
    response = draft(ris, inputs={**INPUTS, "indication": hostile})
    assert response.status_code == 201
    assert response["Content-Type"].startswith("application/json")
    output = AIOutput.objects.get(pk=response.json()["id"])
    assert output.inputs["indication"] == hostile
    assert response.json()["inputs"]["indication"] == hostile


@pytest.mark.parametrize(
    "raw_inputs",
    [
        '{"indication": NaN}',
        '{"indication": Infinity}',
        '{"findings": [{"concept": "nodule", "size_mm": 1e400}]}',
        '{"findings": [{"concept": "nodule", "size_mm": 123456789012345678901234567890}]}',
        '{"indication": "\\ud800 lone surrogate"}',
        '{"indication": "nul \\u0000 inside"}',
        '{"indication": "\\u202e\\u0007 bidi and bell"}',
    ],
)
def test_malformed_values_inside_inputs_never_cause_a_server_error(ris, study, active_model, raw_inputs):
    body = '{"study": "ACC1001", "kind": "report_draft", "inputs": ' + raw_inputs + "}"
    response = ris.post(URL, body, content_type="application/json")
    assert response.status_code in (201, 400, 422), response.content
    if response.status_code != 201:
        assert nothing_stored()
