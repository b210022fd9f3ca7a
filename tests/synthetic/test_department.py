"""Shape and plausibility of a 2,000-study department: people, studies, priors, UIDs, reports."""

import re
from collections import Counter
from datetime import UTC, datetime

from portal.demo.synthetic import (
    MODALITIES,
    PERIOD_END,
    PERIOD_START,
    SPECIALTIES,
    UID_ROOT,
    load_catalog,
    render_ai_draft,
)

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
BODY_PARTS_BY_SPECIALTY = {
    "chest": {"CHEST"},
    "neuro": {"HEAD", "CSPINE"},
    "musculoskeletal": {"KNEE", "SHOULDER", "HIP", "WRIST", "ANKLE", "HAND"},
    "abdominal": {"ABDOMEN"},
    "breast": {"BREAST"},
}


def _when(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0
    return moment


def test_it_has_six_to_eight_radiologists_covering_every_specialty(department):
    assert 6 <= len(department.radiologists) <= 8
    for radiologist in department.radiologists:
        assert re.fullmatch(r"dr_[a-z]+", radiologist.username)
        assert radiologist.style.size_unit in ("mm", "cm")
    covered = {s for r in department.radiologists for s in r.specialties}
    assert covered == set(SPECIALTIES)
    usernames = [r.username for r in department.radiologists]
    assert len(set(usernames)) == len(usernames)


def test_studies_are_read_by_a_radiologist_of_their_specialty(department):
    by_name = {r.username: r for r in department.radiologists}
    for study in department.studies:
        assert study.specialty in by_name[study.radiologist].specialties


def test_every_specialty_modality_and_priority_appears(department):
    assert {s.specialty for s in department.studies} == set(SPECIALTIES)
    assert {s.modality for s in department.studies} == set(MODALITIES)
    assert {s.priority for s in department.studies} == {"routine", "urgent", "stat"}


def test_modalities_fit_the_specialty(department):
    for study in department.studies:
        assert study.body_part in BODY_PARTS_BY_SPECIALTY[study.specialty]
        if study.modality == "MG":
            assert study.specialty == "breast"
        if study.specialty == "breast":
            assert study.patient.sex == "F"


def test_patients_are_synthetic_and_unique(department):
    mrns = [p.mrn for p in department.patients]
    assert len(set(mrns)) == len(mrns)
    for patient in department.patients:
        assert re.fullmatch(r"MRN\d{8}", patient.mrn)
        assert patient.sex in ("M", "F", "O")
        datetime.strptime(patient.birth_date, "%Y-%m-%d")
        assert patient.family_name.isalpha() and patient.given_name.isalpha()
    known = set(mrns)
    assert all(s.patient_mrn in known and s.patient.mrn == s.patient_mrn for s in department.studies)


def test_study_times_fall_in_the_period_and_are_signed_afterwards(department):
    times = [_when(s.study_datetime) for s in department.studies]
    assert times == sorted(times)
    assert all(PERIOD_START <= t <= PERIOD_END for t in times)
    assert PERIOD_START == datetime(2025, 1, 1, tzinfo=UTC)
    for study, taken in zip(department.studies, times, strict=True):
        assert _when(study.signed_at) > taken


def test_priors_are_earlier_studies_of_the_same_patient_and_body_part(department):
    position = {s.accession_number: i for i, s in enumerate(department.studies)}
    with_prior = 0
    for index, study in enumerate(department.studies):
        if study.prior_accession is None:
            assert all(f.change is None for f in study.true_findings)
            assert study.ai_inputs["prior_report_accession"] is None
            continue
        with_prior += 1
        prior = department.studies[position[study.prior_accession]]
        assert position[study.prior_accession] < index
        assert prior.patient_mrn == study.patient_mrn
        assert prior.body_part == study.body_part and prior.laterality == study.laterality
        assert _when(prior.study_datetime) < _when(study.study_datetime)
        assert study.ai_inputs["prior_report_accession"] == study.prior_accession
    assert 0.2 < with_prior / len(department.studies) < 0.5


def test_follow_up_reports_compare_with_the_prior_date(department):
    changed = [s for s in department.studies if any(f.change for f in s.true_findings)]
    assert changed
    for study in changed:
        assert study.signed_sections["comparison"] not in ("None.", "No prior studies available.")


def test_uids_are_valid_and_unique(department):
    seen = set()
    for study in department.studies:
        for uid in (study.study_instance_uid, study.series_instance_uid, study.sop_instance_uid):
            assert len(uid) <= 64 and UID_RE.fullmatch(uid), uid
            assert uid not in seen
            seen.add(uid)
        assert study.study_instance_uid.startswith(UID_ROOT)
    accessions = [s.accession_number for s in department.studies]
    assert len(set(accessions)) == len(accessions)
    assert all(len(a) <= 16 for a in accessions)  # DICOM SH


def test_findings_use_the_controlled_vocabulary(department):
    catalog = load_catalog()
    for study in department.studies:
        concepts = [f.concept for f in study.true_findings]
        assert len(set(concepts)) == len(concepts)
        for finding in study.true_findings:
            pattern = catalog.pattern(finding.concept)
            assert pattern.specialty == study.specialty
            assert pattern.applies_to(study.modality, study.body_part)
            assert finding.laterality in (None, "left", "right", "bilateral")
            assert finding.severity in (None, "mild", "moderate", "severe", "small", "large")
            assert finding.change in (None, "new", "increased", "decreased", "stable", "resolved")
            assert finding.certainty in ("definite", "possible")
            assert finding.size_mm is None or finding.size_mm > 0
            if study.laterality:  # a left knee has only left-sided findings
                assert finding.laterality == study.laterality


def test_some_studies_are_normal_and_say_so(department):
    catalog = load_catalog()
    normal = [s for s in department.studies if s.is_normal]
    assert 0.1 < len(normal) / len(department.studies) < 0.5
    for study in normal:
        impressions = catalog.specialty(study.specialty).normal_impressions
        assert any(text in study.signed_sections["impression"] for text in impressions)


def test_critical_findings_are_called_through(department):
    critical = [s for s in department.studies if any(f.critical for f in s.true_findings)]
    assert critical
    for study in critical:
        assert "Critical result communicated to Dr." in study.signed_sections["impression"]


def test_signed_text_holds_every_section_under_a_header(department):
    for study in department.studies:
        assert set(study.signed_sections) == {"indication", "comparison", "findings", "impression"}
        for text in study.signed_sections.values():
            assert text and text in study.signed_text
        assert re.search(r"^(FINDINGS|Findings):$", study.signed_text, re.M)
        assert re.search(r"^(IMPRESSION|Impression):$", study.signed_text, re.M)


def test_report_styles_differ_between_radiologists(department):
    texts = Counter()
    for study in department.studies:
        texts["upper" if "FINDINGS:" in study.signed_text else "title"] += 1
        texts["cm" if re.search(r"\d\.\d cm", study.signed_text) else "mm"] += 1
        texts["numbered" if "\n1. " in study.signed_text else "prose"] += 1
    assert len(texts) == 6


def test_the_ai_draft_is_a_pure_function_of_its_inputs(department):
    for study in department.studies[:300]:
        assert set(study.ai_inputs) >= {
            "indication",
            "findings",
            "prior_report_accession",
            "specialty",
            "modality",
        }
        assert render_ai_draft(study.ai_inputs) == study.ai_draft_text
        assert study.ai_draft_text.startswith("FINDINGS:\n") and "\n\nIMPRESSION:\n1. " in study.ai_draft_text


def test_dicom_header_carries_the_qa_subset(department):
    study = department.studies[0]
    header = study.dicom_header()
    assert set(header) == set(
        "PatientID PatientName PatientBirthDate PatientSex StudyInstanceUID AccessionNumber Modality"
        " BodyPartExamined StudyDate StudyTime StudyDescription ReferringPhysicianName SeriesInstanceUID"
        " SOPInstanceUID SOPClassUID InstitutionName".split()
    )
    assert re.fullmatch(r"\d{8}", header["StudyDate"]) and re.fullmatch(r"\d{6}", header["StudyTime"])
    assert header["PatientName"] == f"{study.patient.family_name}^{study.patient.given_name}"
    assert "^" in header["ReferringPhysicianName"]


def test_the_catalog_has_enough_distinct_patterns():
    catalog = load_catalog()
    assert len(catalog.patterns) >= 60
    for spec in catalog.specialties:
        assert len(spec.patterns) >= 12, spec.name


def test_no_finding_name_hides_inside_another_of_its_specialty():
    # Otherwise "concept absent from the draft" could not be checked by its name.
    catalog = load_catalog()
    for spec in catalog.specialties:
        for pattern in spec.patterns:
            for other in spec.patterns:
                if other is pattern:
                    continue
                for term in pattern.terms:
                    word = re.compile(rf"\b{re.escape(term)}\b", re.I)
                    assert not any(word.search(t) for t in other.terms), (term, other.concept)
                    assert not any(word.search(loc) for loc in other.locations), (term, other.concept)
