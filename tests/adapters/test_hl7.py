"""HL7 v2 ORU^R01 parsing and ACK building (portal.records.ingest.hl7)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import hl7 as python_hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.records.ingest.hl7 import Hl7OruResult, parse_oru
from portal.records.ingest.hl7_ack import build_ack
from portal.records.ingest.hl7_text import escape, unescape
from portal.records.ingest.payloads import AdapterError, AIOutputPayload, SignedReportPayload

UID = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"


def parse_ack(ack: str) -> python_hl7.Message:
    assert ack.endswith("\r")
    assert "\n" not in ack
    return python_hl7.parse(ack)


def with_endings(text: str, ending: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", ending)


# --- good messages ------------------------------------------------------------------------------
@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
def test_it_parses_a_final_ct_report_whatever_the_line_endings(sample, ending):
    result = parse_oru(with_endings(sample("oru_final_ct_chest.hl7"), ending))

    assert isinstance(result, Hl7OruResult)
    assert result.control_id == "RIS000123"
    assert (result.sending_application, result.sending_facility) == ("RADRIS", "GENHOSP")
    assert (result.receiving_application, result.receiving_facility) == ("CONCORDANCE", "QA")
    assert result.version == "2.5.1"
    assert result.message_type == "ORU^R01"
    assert result.message_datetime == datetime(2024, 3, 1, 9, 15, tzinfo=UTC)

    study = result.study
    assert study.accession_number == "ACC20240301001"
    assert study.study_instance_uid == UID
    assert study.patient.mrn == "MRN0042"
    assert (study.patient.family_name, study.patient.given_name) == ("Doe", "Jane")
    assert study.patient.birth_date == date(1970, 2, 15)
    assert study.patient.sex == "F"
    assert study.description == "CT CHEST WITHOUT CONTRAST"
    assert (study.modality, study.body_part, study.specialty) == ("CT", "CHEST", "chest")
    assert study.priority == "stat"
    assert study.referring_physician == "Welby, Marcus"
    assert study.study_datetime == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)

    report = result.report
    assert isinstance(report, SignedReportPayload)
    assert report.status == "final"
    signer = report.signer
    assert (signer.authority, signer.identifier) == ("GENHOSP", "JSMITH")  # no XCN-9: the facility
    assert (signer.family_name, signer.given_name) == ("Smith", "John")
    assert report.signed_at == datetime(2024, 3, 1, 9, 14, tzinfo=UTC)  # +0100 -> UTC
    assert report.amends_report_id is None
    assert report.text.splitlines()[1] == "CLINICAL HISTORY: Cough & fever for 3 weeks."
    assert UID not in report.text  # the UID OBX is metadata, not report text
    assert report.sections["indication"] == "Cough & fever for 3 weeks."
    assert report.sections["technique"].startswith("CT CHEST WITHOUT CONTRAST")
    assert report.sections["comparison"] == "None."
    assert report.sections["findings"].splitlines() == [
        "6 mm solid nodule in the right lower lobe.",
        "No pleural effusion. No pneumothorax.",
    ]
    assert report.sections["impression"].startswith("6 mm RLL nodule")


def test_it_reads_an_ai_draft_with_zai_and_ft_escapes(sample):
    result = parse_oru(sample("oru_ai_draft.hl7").encode("utf-8"))

    report = result.report
    assert isinstance(report, AIOutputPayload)
    assert (report.model_name, report.model_version, report.kind) == ("chestdraft", "2.1.0", "report_draft")
    assert (report.prompt_tokens, report.completion_tokens, report.latency_ms) == (812, 164, 2350.5)
    assert report.generated_at == datetime(2024, 3, 1, 9, 35, 10, tzinfo=UTC)
    assert report.text == (
        "FINDINGS:\nSmall nodule in the right lower lobe.\nNo effusion.\n\n"
        "IMPRESSION:\nPulmonary nodule, recommend follow-up."
    )
    assert report.study_instance_uid == UID  # from ZDS-1
    assert result.study.study_instance_uid == UID
    assert (report.inputs, report.generation_settings) == ({}, {})


def test_it_reads_a_correction_with_escapes_offsets_and_no_seconds(sample):
    result = parse_oru(sample("oru_correction_ft.hl7"))

    report = result.report
    assert isinstance(report, SignedReportPayload)
    assert report.status == "correction"
    assert report.signer.identifier.lower() == "bjones"
    assert report.signed_at == datetime(2024, 3, 2, 16, 58, tzinfo=UTC)  # 11:58 -0500
    assert report.text == (
        "FINDINGS: Left & right lung fields clear.\nHeart size normal | stable.\n"
        "IMPRESSION: No acute disease. Size 5 ^ 3 cm."
    )
    assert result.study.modality == "CR"
    assert result.study.priority == "routine"
    assert result.study.referring_physician == "Welby, Marcus"
    assert result.version == "2.3"


def test_it_tolerates_missing_optional_segments_and_unescaped_ampersands(oru):
    message = oru({"OBX": {5: "Fish & chips & more ^ caret ~ tilde"}})
    report = parse_oru(message).report
    assert report.text == "Fish & chips & more ^ caret ~ tilde"


def test_it_rejoins_obx_text_split_over_raw_line_breaks(oru):
    message = oru({"OBX": {5: "FINDINGS: first line\nsecond line\r\nthird line"}}, sep="\r")
    assert parse_oru(message).report.text == "FINDINGS: first line\nsecond line\nthird line"


def test_it_joins_one_line_per_obx_in_order(oru):
    lines = [f"OBX|{i}|TX|RPT^Report^L||line {i}||||||F" for i in range(2, 6)]
    report = parse_oru(oru(extra=lines)).report
    assert report.text.splitlines() == ["FINDINGS: No acute disease.", "line 2", "line 3", "line 4", "line 5"]


def test_it_tolerates_trailing_empty_fields_and_mllp_framing(oru):
    message = oru({"OBR": {40: ""}}).replace("\r", "||||\r")
    result = parse_oru(b"\x0b" + message.encode() + b"\x1c\r")
    assert result.study.accession_number == "ACC1"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("202403011014", datetime(2024, 3, 1, 10, 14, tzinfo=UTC)),
        ("20240301101405", datetime(2024, 3, 1, 10, 14, 5, tzinfo=UTC)),
        ("20240301101405.25", datetime(2024, 3, 1, 10, 14, 5, 250000, tzinfo=UTC)),
        ("202403011014+0530", datetime(2024, 3, 1, 4, 44, tzinfo=UTC)),
        ("20240301101405-0800", datetime(2024, 3, 1, 18, 14, 5, tzinfo=UTC)),
        ("20240301", datetime(2024, 3, 1, tzinfo=UTC)),
    ],
)
def test_it_reads_timestamps_with_and_without_seconds_and_offsets(oru, stamp, expected):
    assert parse_oru(oru({"OBR": {22: stamp}})).report.signed_at == expected


def test_naive_timestamps_use_the_default_timezone(oru):
    eastern = timezone(timedelta(hours=-5))
    report = parse_oru(oru({"OBR": {22: "202403011014"}}), default_tz=eastern).report
    assert report.signed_at == datetime(2024, 3, 1, 15, 14, tzinfo=UTC)


def test_signed_at_falls_back_to_the_observation_time(oru):
    assert parse_oru(oru({"OBR": {22: None}})).report.signed_at == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def test_it_decodes_latin1_bytes(oru):
    message = oru({"PID": {5: "Müller^Zoë"}, "MSH": {18: "8859/1"}}).encode("latin-1")
    patient = parse_oru(message).study.patient
    assert (patient.family_name, patient.given_name) == ("Müller", "Zoë")


def test_accession_falls_back_to_the_placer_order_number(oru):
    assert parse_oru(oru({"OBR": {3: None, 2: "PLACER9"}})).study.accession_number == "PLACER9"


@pytest.mark.parametrize(
    ("description", "modality", "specialty"),
    [
        ("MR BRAIN W/WO CONTRAST", "MR", "neuro"),
        ("XR KNEE 3 VIEWS LEFT", "CR", "musculoskeletal"),
        ("US ABDOMEN COMPLETE", "US", "abdominal"),
        ("MAMMO SCREENING BILATERAL", "MG", "breast"),
        ("PET/CT WHOLE BODY", "PT", None),
    ],
)
def test_it_infers_modality_and_specialty_from_the_procedure(oru, description, modality, specialty):
    study = parse_oru(oru({"OBR": {4: f"X1^{description}^L"}})).study
    assert (study.modality, study.specialty) == (modality, specialty)


def test_priority_comes_from_obr5_or_obr27(oru):
    assert parse_oru(oru({"OBR": {5: "A"}})).study.priority == "urgent"
    assert parse_oru(oru({"OBR": {27: "^^^^^S"}})).study.priority == "stat"


def test_an_addendum_is_recognised_by_its_text(oru):
    report = parse_oru(oru({"OBR": {25: "C"}, "OBX": {5: "ADDENDUM: Nodule measures 7 mm."}})).report
    assert report.status == "addendum"


def test_a_preliminary_from_an_ai_sender_uses_obx16_for_the_model(oru):
    message = oru({"MSH": {3: "AI ENGINE"}, "OBR": {25: "P", 32: None}, "OBX": {16: "chestdraft^1.4"}})
    report = parse_oru(message).report
    assert isinstance(report, AIOutputPayload)
    assert (report.model_name, report.model_version) == ("chestdraft", "1.4")
    assert report.generated_at == datetime(2024, 3, 1, 10, 14, tzinfo=UTC)


def test_the_study_uid_obx_may_be_a_reference_pointer(oru):
    extra = [f"OBX|2|RP|113014^Study Instance UID^DCM||{UID}^RADRIS^Application^DICOM||||||F"]
    result = parse_oru(oru(extra=extra))
    assert result.study.study_instance_uid == UID
    assert result.report.text == "FINDINGS: No acute disease."


def test_hostile_text_is_kept_verbatim(oru):
    text = "<script>alert(1)</script>'; DROP TABLE studies; --"
    assert parse_oru(oru({"OBX": {5: text}})).report.text == text


# --- bad messages -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "code", "location"),
    [
        ("", "malformed", "MSH"),
        ("hello world", "malformed", "MSH"),
        ("PID|1||MRN\rMSH|^~\\&|A", "malformed", "MSH"),
        ("MSH|", "malformed", "MSH-2"),
        ("MSH|^^^^|A|B", "malformed", "MSH-2"),
    ],
)
def test_it_refuses_what_is_not_hl7(message, code, location):
    with pytest.raises(AdapterError) as err:
        parse_oru(message)
    assert (err.value.code, err.value.location) == (code, location)


@pytest.mark.parametrize(
    ("overrides", "code", "location"),
    [
        ({"MSH": {9: "ADT^A01"}}, "unsupported", "MSH-9"),
        ({"MSH": {9: "ORU^R30"}}, "unsupported", "MSH-9"),
        ({"MSH": {9: None}}, "missing_field", "MSH-9"),
        ({"MSH": {10: None}}, "missing_field", "MSH-10"),
        ({"MSH": {12: "3.0"}}, "unsupported", "MSH-12"),
        ({"PID": None}, "missing_field", "PID"),
        ({"PID": {3: None}}, "missing_field", "PID-3"),
        ({"PID": {7: "19701345"}}, "malformed", "PID-7"),
        ({"OBR": None}, "missing_field", "OBR"),
        ({"OBR": {2: None, 3: None}}, "missing_field", "OBR-3"),
        ({"OBR": {22: "yesterday"}}, "malformed", "OBR-22"),
        ({"OBR": {25: "Q"}}, "invalid_value", "OBR-25"),
        ({"OBR": {25: None}, "OBX": {11: None}}, "missing_field", "OBR-25"),
        ({"OBR": {25: "X"}}, "unsupported", "OBR-25"),
        ({"OBR": {32: None}}, "missing_field", "OBR-32"),
        ({"OBR": {22: None, 7: None}}, "missing_field", "OBR-22"),
        ({"OBX": None}, "missing_field", "OBX-5"),
        ({"OBX": {5: ""}}, "missing_field", "OBX-5"),
        ({"OBX": {5: "nul\x00byte"}}, "malformed", "OBX-5"),
        ({"OBR": {3: "A" * 65}}, "too_large", "OBR-3"),
        ({"OBR": {25: "P"}, "MSH": {3: "AI"}, "OBX": {16: "onlyname"}}, "missing_field", "OBX-16"),
    ],
)
def test_it_refuses_bad_orus_with_a_location(oru, overrides, code, location):
    with pytest.raises(AdapterError) as err:
        parse_oru(oru(overrides))
    assert (err.value.code, err.value.location) == (code, location)


def test_it_refuses_a_bad_ai_kind_and_bad_token_counts(oru):
    ai = {"OBR": {25: "P"}}
    with pytest.raises(AdapterError) as err:
        parse_oru(oru(ai, extra=["ZAI|m|1|poem"]))
    assert (err.value.code, err.value.location) == ("invalid_value", "ZAI-3")
    with pytest.raises(AdapterError) as err:
        parse_oru(oru(ai, extra=["ZAI|m|1||20240301|many"]))
    assert (err.value.code, err.value.location) == ("malformed", "ZAI-5")
    with pytest.raises(AdapterError) as err:
        parse_oru(oru(ai, extra=["ZAI||1"]))
    assert (err.value.code, err.value.location) == ("missing_field", "ZAI-1")


def test_it_refuses_two_orders_and_batches(oru):
    second_obr = "OBR|2||ACC2|X^CT HEAD||||||||||||||||||||F"
    with pytest.raises(AdapterError) as err:
        parse_oru(oru(extra=[second_obr]))
    assert (err.value.code, err.value.location) == ("unsupported", "OBR[2]")
    with pytest.raises(AdapterError) as err:
        parse_oru(oru() + oru())
    assert err.value.code == "unsupported"


def test_it_refuses_a_malformed_study_uid(oru):
    with pytest.raises(AdapterError) as err:
        parse_oru(oru(extra=["ZDS|not-a-uid^X^Application^DICOM"]))
    assert (err.value.code, err.value.location) == ("malformed", "ZDS-1")


def test_it_refuses_oversized_messages(oru):
    big = oru({"OBX": {5: "x" * 1_100_000}})
    for message in (big, big.encode()):
        with pytest.raises(AdapterError) as err:
            parse_oru(message)
        assert err.value.code == "too_large"


def test_error_messages_do_not_quote_patient_data(oru):
    with pytest.raises(AdapterError) as err:
        parse_oru(oru({"PID": {7: "SECRET-DOB"}}))
    assert "SECRET" not in str(err.value)


# --- escaping -----------------------------------------------------------------------------------
def test_escape_and_unescape_round_trip():
    text = "a|b^c&d~e\\f\nnext line"
    escaped = escape(text)
    assert escaped == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\next line"
    assert unescape(escaped) == text


def test_unescape_handles_hex_formatting_and_stray_backslashes():
    assert unescape("caf\\XC3A9\\") == "café"
    assert unescape("a\\.sp2\\b") == "a\n\nb"
    assert unescape("\\H\\bold\\N\\") == "bold"
    assert unescape("C:\\path") == "C:\\path"  # lone escape: kept
    assert unescape("\\Z99\\") == "\\Z99\\"  # unknown sequence: kept


def test_escape_drops_control_characters_that_could_inject_segments():
    assert escape("ok\rMSA|AA") == "ok\\.br\\MSA\\F\\AA"
    assert "\x00" not in escape("a\x00b")


# --- ACK ----------------------------------------------------------------------------------------
def test_ack_for_an_accepted_message(sample):
    result = parse_oru(sample("oru_final_ct_chest.hl7"))
    ack = parse_ack(build_ack(result, code="AA", text="stored"))

    msh = ack.segment("MSH")
    assert str(msh[3]) == "CONCORDANCE" and str(msh[4]) == "QA"  # sender and receiver swapped
    assert str(msh[5]) == "RADRIS" and str(msh[6]) == "GENHOSP"
    assert str(msh[9]) == "ACK^R01^ACK"
    assert str(msh[10]) and str(msh[10]) != "RIS000123"
    assert str(msh[12]) == "2.5.1"
    msa = ack.segment("MSA")
    assert (str(msa[1]), str(msa[2]), str(msa[3])) == ("AA", "RIS000123", "stored")
    with pytest.raises(KeyError):
        ack.segment("ERR")


def test_ack_control_ids_are_unique(sample):
    result = parse_oru(sample("oru_final_ct_chest.hl7"))
    ids = {str(parse_ack(build_ack(result, code="AA")).segment("MSH")[10]) for _ in range(50)}
    assert len(ids) == 50


@pytest.mark.parametrize(
    ("overrides", "err3", "err2"),
    [
        ({"OBR": {2: None, 3: None}}, "101", "OBR^1^3"),
        ({"OBR": {22: "yesterday"}}, "102", "OBR^1^22"),
        ({"OBR": {25: "Q"}}, "103", "OBR^1^25"),
        ({"MSH": {9: "ADT^A01"}}, "200", "MSH^1^9"),
        ({"MSH": {12: "3.0"}}, "203", "MSH^1^12"),
    ],
)
def test_ack_for_a_refused_message_has_err(oru, overrides, err3, err2):
    raw = oru(overrides)
    with pytest.raises(AdapterError) as err:
        parse_oru(raw)
    ack = parse_ack(build_ack(raw, code="AR", error=err.value))

    msa = ack.segment("MSA")
    assert (str(msa[1]), str(msa[2])) == ("AR", "CTRL42")
    assert unescape(str(msa[3])) == err.value.message
    err_segment = ack.segment("ERR")
    assert str(err_segment[2]) == err2
    assert str(err_segment[3][0][0]) == err3
    assert str(err_segment[3][0][2]) == "HL70357"
    assert str(err_segment[4]) == "E"
    assert str(err_segment[1]).startswith(err2)


def test_ack_for_an_unparseable_message_still_parses():
    error = AdapterError("malformed", "not an HL7 message", "MSH")
    for raw in (b"\x00\xff garbage", "", None):
        ack = parse_ack(build_ack(raw, code="AR", error=error))
        assert str(ack.segment("MSA")[1]) == "AR"
        assert str(ack.segment("MSA")[2]) == ""
        assert str(ack.segment("MSH")[12]) == "2.5"


def test_ack_escapes_text_and_echoed_fields():
    raw = "MSH|^~\\&|APP\\F\\X|FAC|||20240101||ORU^R01|ID^1|P|2.4\rPID|1"
    ack_text = build_ack(raw, code="AE", text="bad | text\rMSA|AA", error=AdapterError("conflict", "x&y"))
    ack = parse_ack(ack_text)
    assert len(ack) == 3  # no injected segment
    msa = ack.segment("MSA")
    assert str(msa[2]) == "ID"  # first component of the original MSH-10
    assert unescape(str(msa[3])) == "bad | text\nMSA|AA"
    assert unescape(str(ack.segment("MSH")[5])) == "APP|X"
    assert str(ack.segment("MSH")[12]) == "2.4"
    assert str(ack.segment("ERR")[3][0][0]) == "207"


def test_build_ack_refuses_unknown_codes():
    with pytest.raises(ValueError):
        build_ack(None, code="OK")


# --- properties ---------------------------------------------------------------------------------
@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_parse_oru_raises_only_adapter_errors_on_bytes(data):
    try:
        parse_oru(data)
    except AdapterError:
        pass


_hl7ish = st.text(
    alphabet=st.sampled_from(list("MSHPIDOBRXZA|^~\\&\r\n 0123456789.+-FTCP\x00é")), max_size=400
)


@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_hl7ish, _hl7ish.map(lambda s: "MSH|^~\\&|" + s)))
def test_parse_oru_raises_only_adapter_errors_on_hl7ish_text(text):
    try:
        parse_oru(text)
    except AdapterError:
        pass


_FIELDS = [
    "PID-3",
    "PID-5",
    "PID-7",
    "PID-8",
    "OBR-3",
    "OBR-4",
    "OBR-5",
    "OBR-7",
    "OBR-22",
    "OBR-25",
    "OBR-32",
]
_FIELDS += ["OBX-2", "OBX-3", "OBX-5", "OBX-16", "MSH-3", "MSH-9", "MSH-10", "MSH-12"]


# The fixture only hands over a pure function, so sharing it across examples is safe.
@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_FIELDS), value=st.text(max_size=60), status=st.sampled_from(["F", "C", "P"]))
def test_mutating_any_field_raises_only_adapter_errors(oru, field, value, status):
    segment, number = field.split("-")
    overrides = {"OBR": {25: status}, "MSH": {3: "AI" if status == "P" else "RADRIS"}}
    overrides.setdefault(segment, {})[int(number)] = value
    try:
        result = parse_oru(oru(overrides))
    except AdapterError:
        return
    assert result.study.accession_number
    assert result.report is None or result.report.text.strip()


@pytest.mark.parametrize(
    "extra",
    [["OBX|1|TX|||a"] * 2001, ["OBX|1|TX|||" + "^" * 50_001]],
    ids=["too-many-segments", "too-many-delimiters"],
)
def test_it_refuses_messages_too_costly_to_parse(oru, extra):
    with pytest.raises(AdapterError) as err:
        parse_oru(oru(extra=extra))
    assert err.value.code == "too_large"
