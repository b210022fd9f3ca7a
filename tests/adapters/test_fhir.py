"""FHIR R4 DiagnosticReport parsing and OperationOutcome rendering (portal.records.ingest.fhir)."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, date, datetime

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.records.ingest.fhir import FhirReportResult, parse_diagnostic_report
from portal.records.ingest.fhir_ai import AI_MODEL_URL, REPLACES_URL
from portal.records.ingest.fhir_outcome import operation_outcome
from portal.records.ingest.payloads import AdapterError, AIOutputPayload, SignedReportPayload

UID = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"


@pytest.fixture
def final_report(data_dir) -> dict:
    return json.loads((data_dir / "fhir_final.json").read_text())


@pytest.fixture
def ai_report(data_dir) -> dict:
    return json.loads((data_dir / "fhir_preliminary_ai.json").read_text())


def b64(text: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(text.encode(encoding)).decode("ascii")


def refused(body) -> AdapterError:
    with pytest.raises(AdapterError) as err:
        parse_diagnostic_report(body)
    return err.value


# --- good reports -------------------------------------------------------------------------------
def test_it_parses_a_final_report_with_presented_form_and_contained_patient(final_report):
    result = parse_diagnostic_report(json.dumps(final_report).encode())

    assert isinstance(result, FhirReportResult)
    assert (result.report_id, result.fhir_status) == ("rpt-1001", "final")
    patient = result.patient
    assert patient.mrn == "MRN0042"  # the MR-typed identifier, not the first one
    assert (patient.family_name, patient.given_name, patient.sex) == ("Doe", "Jane", "F")
    assert patient.birth_date == date(1970, 2, 15)

    report = result.payload
    assert isinstance(report, SignedReportPayload)
    assert report.accession_number == "ACC20240301001"
    assert report.study_instance_uid == UID
    assert (report.signer.authority, report.signer.identifier) == ("portal", "jsmith")
    assert report.status == "final"
    assert report.amends_report_id is None
    assert report.signed_at == datetime(2024, 3, 1, 9, 14, tzinfo=UTC)
    assert report.text.startswith("INDICATION: Cough & fever.\nFINDINGS:\n6 mm solid nodule")
    assert report.sections["indication"] == "Cough & fever."
    assert report.sections["impression"] == "6 mm RLL nodule; follow-up CT in 6-12 months."

    study = result.study
    assert study.patient == patient
    assert (study.accession_number, study.study_instance_uid) == ("ACC20240301001", UID)
    assert (study.modality, study.body_part, study.specialty) == ("CT", "CHEST", "chest")
    assert study.study_datetime == datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
    assert study.description == "CT CHEST WITHOUT CONTRAST"


def test_it_parses_a_preliminary_ai_draft_with_its_extensions(ai_report):
    result = parse_diagnostic_report(json.dumps(ai_report))

    output = result.payload
    assert isinstance(output, AIOutputPayload)
    assert (output.model_name, output.model_version, output.kind) == ("chestdraft", "2.1.0", "report_draft")
    assert output.accession_number == "ACC20240301001"  # from basedOn, system contains "accession"
    assert output.inputs == {"indication": "cough", "priors": 1}
    assert output.generation_settings == {"temperature": 0.2, "max_new_tokens": 512}
    assert (output.prompt_tokens, output.completion_tokens, output.latency_ms) == (812, 164, 2350.5)
    assert output.generated_at == datetime(2024, 3, 1, 9, 35, 10, tzinfo=UTC)
    assert output.text == "Pulmonary nodule, recommend follow-up."
    assert output.study_instance_uid is None
    assert result.patient.mrn == "MRN0042"
    assert (result.patient.family_name, result.patient.sex) == ("", "U")
    assert result.study.study_datetime == datetime(2024, 3, 1, tzinfo=UTC)  # a date: midnight UTC


def test_a_device_performer_identifies_the_model(ai_report):
    ai_report["extension"] = []
    ai_report["performer"] = [{"reference": "Device/dev-1", "display": "chest draft 3.0.1"}]
    output = parse_diagnostic_report(ai_report).payload
    assert (output.model_name, output.model_version, output.kind) == ("chest draft", "3.0.1", "report_draft")
    assert (output.inputs, output.generation_settings, output.prompt_tokens) == ({}, {}, None)


@pytest.mark.parametrize(
    ("status", "expected"), [("amended", "correction"), ("corrected", "correction"), ("appended", "addendum")]
)
def test_amendments_map_to_correction_or_addendum(final_report, status, expected):
    final_report["status"] = status
    final_report["extension"] = [
        {"url": REPLACES_URL, "valueReference": {"reference": "DiagnosticReport/rpt-1000"}}
    ]
    report = parse_diagnostic_report(final_report).payload
    assert (report.status, report.amends_report_id) == (expected, "rpt-1000")


def test_an_amendment_without_replaces_is_matched_later_by_accession(final_report):
    final_report["status"] = "corrected"
    assert parse_diagnostic_report(final_report).payload.amends_report_id is None


def test_a_conclusion_alone_is_the_impression(final_report):
    del final_report["presentedForm"]
    report = parse_diagnostic_report(final_report).payload
    assert report.text == "6 mm RLL nodule; follow-up CT in 6-12 months."
    assert report.sections == {"impression": report.text}


def test_the_accession_may_come_from_a_contained_service_request(final_report):
    del final_report["identifier"]
    final_report["contained"].append(
        {
            "resourceType": "ServiceRequest",
            "id": "sr",
            "status": "completed",
            "intent": "order",
            "subject": {"reference": "#pat"},
            "identifier": [{"type": {"text": "ACSN"}, "value": "ACC-SR-9"}],
        }
    )
    final_report["basedOn"] = [{"reference": "#sr"}]
    assert parse_diagnostic_report(final_report).payload.accession_number == "ACC-SR-9"


def test_a_display_name_alone_does_not_identify_the_signer(final_report):
    final_report["resultsInterpreter"] = [{"display": "BJones"}]
    with pytest.raises(AdapterError) as err:
        parse_diagnostic_report(final_report)
    assert (err.value.code, err.value.location) == ("missing_field", "DiagnosticReport.resultsInterpreter")


def test_hostile_text_is_kept_verbatim(final_report):
    text = "<img src=x onerror=alert(1)> Robert'); DROP TABLE reports;--"
    final_report["presentedForm"] = [{"contentType": "text/plain", "data": b64(text)}]
    assert parse_diagnostic_report(final_report).payload.text == text


# --- bad reports --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "code", "location"),
    [
        (b"{not json", "malformed", ""),
        (b"\xff\xfe", "malformed", ""),
        ("[1, 2]", "malformed", ""),
        ('{"resourceType": "DiagnosticReport", "status": NaN}', "malformed", ""),
        ({"resourceType": "Patient"}, "unsupported", "resourceType"),
        ({"status": "final"}, "missing_field", "resourceType"),
        (b"x" * 1_100_000, "too_large", ""),
    ],
)
def test_it_refuses_what_is_not_a_diagnostic_report(body, code, location):
    error = refused(body)
    assert (error.code, error.location) == (code, location)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("bogus", "invalid_value"),
        ("entered-in-error", "unsupported"),
        ("registered", "unsupported"),
        ("cancelled", "unsupported"),
        ("partial", "unsupported"),
        (None, "missing_field"),
    ],
)
def test_it_refuses_statuses_it_does_not_accept(final_report, status, code):
    final_report["status"] = status
    error = refused(final_report)
    assert (error.code, error.location) == (code, "DiagnosticReport.status")


def _without(report: dict, *keys: str) -> dict:
    report = copy.deepcopy(report)
    for key in keys:
        report.pop(key, None)
    return report


@pytest.mark.parametrize(
    ("mutate", "code", "location"),
    [
        (lambda r: _without(r, "identifier"), "missing_field", "DiagnosticReport.identifier"),
        (
            lambda r: {**r, "identifier": [{"value": "no-type"}]},
            "missing_field",
            "DiagnosticReport.identifier",
        ),
        (lambda r: _without(r, "subject"), "missing_field", "DiagnosticReport.subject"),
        (lambda r: {**r, "subject": {"reference": "Patient/1"}}, "not_found", "DiagnosticReport.subject"),
        (lambda r: {**r, "subject": {"reference": "#nobody"}}, "malformed", "DiagnosticReport.subject"),
        (lambda r: {**r, "subject": {"reference": "Group/1"}}, "unsupported", "DiagnosticReport.subject"),
        (lambda r: _without(r, "code"), "missing_field", "DiagnosticReport.code"),
        (lambda r: {**r, "issued": "yesterday"}, "malformed", "DiagnosticReport.issued"),
        (lambda r: {**r, "unknownElement": 1}, "malformed", "DiagnosticReport.unknownElement"),
        (lambda r: _without(r, "issued"), "missing_field", "DiagnosticReport.issued"),
        (lambda r: _without(r, "resultsInterpreter"), "missing_field", "DiagnosticReport.resultsInterpreter"),
        (
            lambda r: _without(r, "presentedForm", "conclusion"),
            "missing_field",
            "DiagnosticReport.conclusion",
        ),
        (
            lambda r: {**r, "presentedForm": [{"contentType": "text/plain", "data": "!!!not base64"}]},
            "malformed",
            "DiagnosticReport.presentedForm[0].data",
        ),
        (
            lambda r: {**r, "presentedForm": [{"contentType": "text/html", "data": b64("<p>hi</p>")}]},
            "unsupported",
            "DiagnosticReport.presentedForm[0].contentType",
        ),
        (
            lambda r: {
                **r,
                "presentedForm": [{"contentType": "text/plain; charset=iso-8859-1", "data": b64("x")}],
            },
            "unsupported",
            "DiagnosticReport.presentedForm[0].contentType",
        ),
        (
            lambda r: {**r, "presentedForm": [{"data": b64("x")}]},
            "missing_field",
            "DiagnosticReport.presentedForm[0].contentType",
        ),
        (
            lambda r: {**r, "presentedForm": [{"contentType": "text/plain", "url": "http://x/r.txt"}]},
            "unsupported",
            "DiagnosticReport.presentedForm[0].data",
        ),
        (
            lambda r: {
                **r,
                "presentedForm": [{"contentType": "text/plain", "data": b64("caf\xe9", "latin-1")}],
            },
            "malformed",
            "DiagnosticReport.presentedForm[0].data",
        ),
        (
            lambda r: {**r, "presentedForm": [{"contentType": "text/plain", "data": b64("a\x00b")}]},
            "malformed",
            "DiagnosticReport.presentedForm[0].data",
        ),
        (
            lambda r: {
                **r,
                "imagingStudy": [{"identifier": {"system": "urn:dicom:uid", "value": "urn:oid:x.y"}}],
            },
            "malformed",
            "DiagnosticReport.imagingStudy",
        ),
    ],
)
def test_it_refuses_bad_final_reports_with_a_location(final_report, mutate, code, location):
    error = refused(mutate(final_report))
    assert (error.code, error.location) == (code, location)


@pytest.mark.parametrize(
    ("extension", "code"),
    [
        ({"url": AI_MODEL_URL, "valueString": "no-version"}, "malformed"),
        (
            {"url": "http://concordance.local/fhir/StructureDefinition/ai-kind", "valueCode": "poem"},
            "invalid_value",
        ),
        (
            {"url": "http://concordance.local/fhir/StructureDefinition/ai-inputs", "valueString": "[1]"},
            "malformed",
        ),
        (
            {"url": "http://concordance.local/fhir/StructureDefinition/ai-inputs", "valueString": "{bad"},
            "malformed",
        ),
        (
            {"url": "http://concordance.local/fhir/StructureDefinition/ai-latency-ms", "valueDecimal": -1},
            "malformed",
        ),
    ],
)
def test_it_refuses_bad_ai_extensions(ai_report, extension, code):
    ai_report["extension"] = [e for e in ai_report["extension"] if e["url"] != extension["url"]] + [extension]
    assert refused(ai_report).code == code


def test_a_preliminary_report_needs_a_model(ai_report):
    ai_report["extension"] = []
    error = refused(ai_report)
    assert (error.code, error.location) == ("missing_field", "DiagnosticReport.extension")


def test_error_messages_do_not_quote_patient_data(final_report):
    final_report["issued"] = "SECRET-1234"
    assert "SECRET" not in str(refused(final_report))


# --- OperationOutcome ---------------------------------------------------------------------------
def test_operation_outcome_is_valid_r4_and_maps_codes():
    errors = [
        AdapterError("malformed", "body is not valid JSON"),
        AdapterError("missing_field", "status is required", "DiagnosticReport.status"),
        AdapterError("invalid_value", "bad status", "DiagnosticReport.status"),
        AdapterError("unsupported", "text/html", "DiagnosticReport.presentedForm[0].contentType"),
        AdapterError("too_large", "too big"),
        AdapterError("conflict", "already signed"),
        AdapterError("duplicate", "already stored"),
        AdapterError("something_new", "?"),
    ]
    outcome = operation_outcome(errors)
    OperationOutcome.model_validate(outcome)
    assert [i["code"] for i in outcome["issue"]] == [
        "structure",
        "required",
        "value",
        "not-supported",
        "too-long",
        "conflict",
        "duplicate",
        "processing",
    ]
    assert outcome["issue"][1]["expression"] == ["DiagnosticReport.status"]
    assert outcome["issue"][1]["diagnostics"] == "status is required"
    assert "expression" not in outcome["issue"][0]
    assert all(i["severity"] == "error" for i in outcome["issue"])


def test_operation_outcome_for_one_error_and_for_none():
    single = operation_outcome(
        AdapterError("malformed", "bad", "DiagnosticReport.issued"), severity="warning"
    )
    assert single["issue"] == [
        {
            "severity": "warning",
            "code": "invalid",
            "diagnostics": "bad",
            "expression": ["DiagnosticReport.issued"],
        }
    ]
    assert operation_outcome([])["issue"][0]["code"] == "informational"
    with pytest.raises(ValueError):
        operation_outcome([], severity="panic")


def test_every_refusal_renders_as_a_valid_operation_outcome(final_report):
    final_report["presentedForm"] = [{"contentType": "text/html", "data": b64("x")}]
    OperationOutcome.model_validate(operation_outcome(refused(final_report)))


# --- properties ---------------------------------------------------------------------------------
@settings(max_examples=300, deadline=2000)
@given(st.binary(max_size=500))
def test_parse_diagnostic_report_raises_only_adapter_errors_on_bytes(data):
    try:
        parse_diagnostic_report(data)
    except AdapterError:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_elements = [
    "identifier",
    "status",
    "code",
    "subject",
    "effectiveDateTime",
    "issued",
    "resultsInterpreter",
    "presentedForm",
    "conclusion",
    "extension",
    "basedOn",
    "imagingStudy",
    "performer",
    "contained",
]


@settings(max_examples=300, deadline=2000)
@given(st.sampled_from(_elements), _json)
def test_replacing_any_element_raises_only_adapter_errors(element, value):
    with open(__file__.rsplit("/", 1)[0] + "/data/fhir_final.json") as fp:
        report = json.load(fp)
    report[element] = value
    try:
        parse_diagnostic_report(report)
    except AdapterError:
        pass
