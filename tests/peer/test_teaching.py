"""Teaching sets: adjudicated cases copied de-identified, with the committee's view; PDF slides and a
JSON/Markdown bundle that hold no identifier."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from portal.core.errors import InvalidRecord, RecordConflict, RecordNotFound
from portal.peer import exports, teaching
from portal.peer.models import TeachingCase, TeachingSet
from portal.review import services
from portal.review.errors import ReviewForbidden
from portal.review.models import Verdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def teaching_set(personas) -> TeachingSet:
    return teaching.teaching_set_create(
        title="Chest conference", conference_date=None, description="", actor=personas["dana"], context=SYSTEM
    )


@pytest.fixture
def scored(personas, make_case, adjudicate):
    """A case of alice's scored by carol, the comment naming the patient, the reader and a date."""
    case = make_case(personas["alice"])
    adjudicate(
        case, personas["carol"], comment="Ada Testperson: Dr. Okonkwo missed it on 2026-03-04 (MRN above)."
    )
    return case


def identifiers(case) -> list[str]:
    study = case.study
    return [
        study.patient.mrn,
        study.accession_number,
        "Testperson",
        "Okonkwo",
        "Okafor",
        "Meredith",
        "2026-03-04",
    ]


def test_a_scored_case_is_copied_without_identifiers(personas, teaching_set, scored):
    case = teaching.teaching_case_add(
        teaching_set=teaching_set, comparison_id=scored.pk, actor=personas["dana"], context=SYSTEM
    )

    for text in (case.ai_draft, case.signed_report, case.committee_comment, json.dumps(case.discrepancies)):
        for leaked in identifiers(scored):
            assert leaked not in text
    assert "Large right pneumothorax" in case.signed_report and "Small left pleural effusion" in case.ai_draft
    assert "missed it on [DATE]" in case.committee_comment
    assert case.radpeer == "2b" and case.position == 1 and case.specialty == "chest"
    assert {d["category"] for d in case.discrepancies} <= {c.category for c in scored.discrepancies.all()}
    event = AuditEvent.objects.get(action="teaching_case.add")
    assert event.study_id == scored.study_id and event.details["comparison"] == scored.pk


def test_discrepancies_the_committee_rejected_are_not_taught(personas, teaching_set, make_case):
    case = make_case(personas["alice"])
    discrepancies = list(case.discrepancies.order_by("pk"))
    verdicts = {d.pk: services.VerdictInput(Verdict.AGREE, correct_side="ai_draft") for d in discrepancies}
    verdicts[discrepancies[0].pk] = services.VerdictInput(Verdict.NOT_A_DISCREPANCY)
    services.review_submit(
        comparison=case,
        reviewer=personas["carol"],
        radpeer="2a",
        comment="",
        verdicts=verdicts,
        context=SYSTEM,
    )

    copied = teaching.teaching_case_add(
        teaching_set=teaching_set, comparison_id=case.pk, actor=personas["dana"], context=SYSTEM
    )

    assert len(copied.discrepancies) == len(discrepancies) - 1


def test_only_scored_cases_can_be_taught(personas, teaching_set, make_case):
    with pytest.raises(InvalidRecord, match="scored"):
        teaching.teaching_case_add(
            teaching_set=teaching_set,
            comparison_id=make_case(personas["alice"]).pk,
            actor=personas["dana"],
            context=SYSTEM,
        )
    with pytest.raises(RecordNotFound):
        teaching.teaching_case_add(
            teaching_set=teaching_set, comparison_id=999_999, actor=personas["dana"], context=SYSTEM
        )
    assert not TeachingCase.objects.exists()


def test_a_case_is_added_once_per_set(personas, teaching_set, scored):
    teaching.teaching_case_add(
        teaching_set=teaching_set, comparison_id=scored.pk, actor=personas["dana"], context=SYSTEM
    )

    with pytest.raises(RecordConflict):
        teaching.teaching_case_add(
            teaching_set=teaching_set, comparison_id=scored.pk, actor=personas["dana"], context=SYSTEM
        )
    assert TeachingCase.objects.count() == 1


@pytest.mark.parametrize("name", ["alice", "carol", "lena", "otto", "eve"])
def test_only_the_chair_builds_sets(personas, name, scored, teaching_set):
    with pytest.raises(ReviewForbidden):
        teaching.teaching_set_create(
            title="x", conference_date=None, description="", actor=personas[name], context=SYSTEM
        )
    with pytest.raises(ReviewForbidden):
        teaching.teaching_case_add(
            teaching_set=teaching_set, comparison_id=scored.pk, actor=personas[name], context=SYSTEM
        )
    assert TeachingSet.objects.count() == 1 and not TeachingCase.objects.exists()


@pytest.mark.parametrize(
    ("title", "description"), [("", ""), ("   ", ""), ("x" * 201, ""), ("ok", "d" * 5001)]
)
def test_bad_sets_are_refused(personas, title, description):
    with pytest.raises(InvalidRecord):
        teaching.teaching_set_create(
            title=title, conference_date=None, description=description, actor=personas["dana"], context=SYSTEM
        )
    assert not TeachingSet.objects.exists()


def test_the_chairs_edits_are_de_identified_again(personas, teaching_set, scored):
    case = teaching.teaching_case_add(
        teaching_set=teaching_set, comparison_id=scored.pk, actor=personas["dana"], context=SYSTEM
    )

    teaching.teaching_case_edit(
        case=case,
        ai_draft="Effusion. Seen by Chidi Okonkwo on 4 March 2026.",
        signed_report=f"Pneumothorax. {scored.study.accession_number}",
        committee_comment="Good catch.",
        actor=personas["dana"],
        context=SYSTEM,
    )

    case.refresh_from_db()
    assert case.ai_draft == "Effusion. Seen by [NAME] [NAME] on [DATE]."
    assert case.signed_report == "Pneumothorax. [ID]"
    assert AuditEvent.objects.filter(action="teaching_case.edit").count() == 1
    with pytest.raises(InvalidRecord):
        teaching.teaching_case_edit(
            case=case,
            ai_draft=" ",
            signed_report="x",
            committee_comment="",
            actor=personas["dana"],
            context=SYSTEM,
        )


def _set_with_cases(personas, teaching_set, make_case, adjudicate, count: int) -> list[TeachingCase]:
    cases = []
    for _ in range(count):
        source = make_case(personas["alice"])
        adjudicate(
            source,
            personas["carol"],
            comment="```\n<script>alert(1)</script> [x](javascript:alert(1))\n" * 40,
        )
        cases.append(
            teaching.teaching_case_add(
                teaching_set=teaching_set, comparison_id=source.pk, actor=personas["dana"], context=SYSTEM
            )
        )
    return cases


def test_the_pdf_has_a_title_slide_and_one_page_per_case(personas, teaching_set, make_case, adjudicate):
    cases = _set_with_cases(personas, teaching_set, make_case, adjudicate, 3)
    TeachingCase.objects.filter(pk=cases[0].pk).update(signed_report="Very long line of findings. " * 2000)

    pdf = exports.set_pdf(teaching_set, list(teaching_set.cases.order_by("position")))

    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type /Page\b(?!s)", pdf)) == 1 + 3


def test_the_bundle_holds_json_and_markdown_without_identifiers(
    personas, teaching_set, make_case, adjudicate
):
    cases = _set_with_cases(personas, teaching_set, make_case, adjudicate, 2)

    archive = zipfile.ZipFile(io.BytesIO(exports.set_bundle(teaching_set, cases)))

    assert sorted(archive.namelist()) == ["teaching-set.json", "teaching-set.md"]
    payload = json.loads(archive.read("teaching-set.json"))
    assert payload["format"] == "concordance-teaching-set" and [c["number"] for c in payload["cases"]] == [
        1,
        2,
    ]
    assert all("comparison" not in json.dumps(c) for c in payload["cases"])  # no way back to the record
    markdown = archive.read("teaching-set.md").decode()
    for source in TeachingCase.objects.select_related("comparison__study__patient"):
        for leaked in (source.comparison.study.patient.mrn, source.comparison.study.accession_number):
            assert leaked not in markdown and leaked not in json.dumps(payload)
    # The comment's own ``` cannot close the fence around it, so no markup escapes into the document.
    assert "````text" in markdown


def test_markdown_escapes_a_hostile_title():
    payload = {
        "title": "<img src=x onerror=alert(1)> # [x](javascript:y)",
        "conference_date": None,
        "description": "",
        "cases": [],
    }

    first = exports.set_markdown(payload).splitlines()[0]

    assert "<img" not in first and "](" not in first
