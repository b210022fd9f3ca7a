"""The package's report.pdf as a reader of a court bundle meets it: per study the AI draft and the
signed report with the differing words marked and each difference in plain language, then the
timeline and the chain of custody; names outside Latin-1 as written; a study without an accession
number or signed by a clinician who has no account exports all the same."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from audit import checkpoints
from audit import verify_package as vp
from audit.log import AuditContext
from audit.signing import public_key_pem
from portal.legal import export_jobs
from portal.legal.export import records
from portal.legal.export.deid import Identity
from portal.legal.export.report_texts import compared_pairs
from portal.legal.models import ExportStatus
from tests.legal_export.conftest import read_zip
from tests.legal_export.test_deid import _pdf_text

pytestmark = pytest.mark.django_db
WHEN = dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC)


def _build(personas, **scope) -> Path:
    package = export_jobs.export_request(
        actor=personas["lena"], context=AuditContext(channel="test"), matter_reference="M-1", reason="Claim",
        **scope,
    )  # fmt: skip
    built = export_jobs.export_build(package_pk=package.pk)
    assert built is not None and built.status == ExportStatus.READY, built and built.error
    return Path(built.file_path)


def _text(path: Path) -> str:
    return " ".join(_pdf_text(read_zip(path)["report.pdf"]).decode("utf-8").split())


def test_each_study_shows_its_texts_then_differences_timeline_and_custody(department, personas):
    text = _text(_build(personas, accession_numbers=["ACC-7001"]))

    draft, signed = text.index("AI draft (report draft)"), text.index("Signed report (final)")
    differences, timeline, custody = (
        text.index("Differences"),
        text.index("Timeline"),
        text.index("Chain of custody"),
    )
    assert draft < signed < differences < timeline < custody
    assert "Small left pleural effusion." in text[draft:signed]
    assert "Right apical pneumothorax." in text[signed:differences]
    # Plain language: the categories' labels, "not mentioned" for a side that says nothing.
    assert "Missed finding (significant): pneumothorax" in text
    assert "AI draft: not mentioned" in text
    for raw in ("missed_finding", "report_draft", 'AI ""', "significant missed"):
        assert raw not in text


def test_the_marked_words_are_the_engines_marks(department):
    from portal.records.models import Study

    study = Study.objects.get(accession_number="ACC-7001")
    [bundle] = records.load_chunk([study.pk], Identity())

    [pair] = compared_pairs(bundle)

    marked_draft = [piece for piece, marked in pair.draft.pieces if marked]
    marked_report = [piece for piece, marked in pair.report.pieces if marked]
    assert any("left" in piece.lower() for piece in marked_draft)
    assert any("right" in piece.lower() for piece in marked_report)
    assert any("pneumothorax" in piece.lower() for piece in marked_report)
    # The pieces put back together are the texts themselves.
    assert "".join(piece for piece, _ in pair.draft.pieces) == bundle.ai_outputs[0].text
    assert len(pair.differences) == study.comparisons.get().discrepancies.count()


@pytest.fixture
def unnamed_study(personas):
    """A study known only by its StudyInstanceUID, of a patient whose name is not Latin-1, signed by
    a locum the RIS named (no portal account), compared by the engine."""
    from portal.records.models import (
        AIOutput,
        Clinician,
        ModelVersion,
        Patient,
        SignedReport,
        Study,
        sha256_text,
    )
    from portal.review.services import study_compare

    patient = Patient.objects.create(mrn="MRN-U-1", family_name="Łukasiewicz", given_name="Zoë")
    study = Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.99.4242", patient=patient,
                                 study_datetime=WHEN, modality="CR")  # fmt: skip
    version, _ = ModelVersion.objects.get_or_create(name="concordance-chest", version="1.0.0")
    draft = "FINDINGS:\nSmall left pleural effusion.\n\nIMPRESSION:\nSmall left pleural effusion."
    AIOutput.objects.create(
        study=study, kind="report_draft", model_version=version, text=draft,
        text_sha256=sha256_text(draft), payload_sha256="b" * 64, generated_at=WHEN,
    )  # fmt: skip
    locum = Clinician.objects.create(
        authority="RIS", identifier="L-77", family_name="Żółtowska", given_name="Łucja"
    )
    signed = (
        "FINDINGS:\nSmall right pleural effusion.\n\nIMPRESSION:\nSmall right pleural effusion (Ærø clinic)."
    )
    SignedReport.objects.create(study=study, clinician=locum, sections={"findings": signed}, text=signed,
                                text_sha256=sha256_text(signed), payload_sha256="c" * 64,
                                signed_at=WHEN + dt.timedelta(hours=2))  # fmt: skip
    assert study_compare(study.pk)
    return study


def test_a_study_without_accession_signed_by_a_locum_exports_and_verifies(personas, unnamed_study):
    path = _build(personas, patient_mrn="MRN-U-1")

    report = vp.verify_package(path, public_key_pem(checkpoints.signing_key()))
    assert report.valid, report.reason
    text = _text(path)
    assert "Study (no accession number)" in text
    assert "signed by Żółtowska, Łucja" in text  # the clinician as the RIS named them, as written
    assert "Ærø clinic" in text and "?" not in text
    files = read_zip(path)
    assert any(name.startswith("records/study-") for name in files)


def test_a_deidentified_package_marks_the_same_words_without_the_names(personas, unnamed_study):
    path = _build(personas, patient_mrn="MRN-U-1", deidentify=True)

    text = _text(path)
    assert "Żółtowska" not in text and "Łukasiewicz" not in text
    assert "Location / laterality" in text or "Missed finding" in text
    assert vp.verify_package(path, public_key_pem(checkpoints.signing_key())).valid


def test_fonts_are_embedded_only_when_a_text_needs_them(department, personas, unnamed_study):
    latin = read_zip(_build(personas, accession_numbers=["ACC-7001"]))["report.pdf"]
    wider = read_zip(_build(personas, patient_mrn="MRN-U-1"))["report.pdf"]

    assert b"DejaVu" not in latin  # core fonts: fast, and enough for Latin-1
    assert b"DejaVu" in wider


@pytest.mark.parametrize(
    ("text", "width", "lines"),
    [
        ("", 10, [""]),
        ("short", 10, ["short"]),
        ("one two three four", 9, ["one two", "three", "four"]),
        ("a\n\nb", 10, ["a", "", "b"]),
        ("abcdefghijklmnop", 5, ["abcde", "fghij", "klmno", "p"]),
        ("word   spaced   out", 8, ["word", "spaced", "out"]),
    ],
)
def test_report_texts_wrap_at_spaces_and_keep_their_line_breaks(text, width, lines):
    from portal.legal.export.pdf import wrap_offsets

    spans = list(wrap_offsets(text, width))

    assert [text[a:b] for a, b in spans] == lines
    assert all(b - a <= width for a, b in spans)
