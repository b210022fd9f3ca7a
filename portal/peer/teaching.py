"""Teaching sets: the QA chair turns adjudicated cases into anonymised material for a conference.

Adding a case copies its texts through :func:`~portal.peer.deidentify.deidentify`, with every
identifier the record knows for it, so what the set shows and exports never touches the clinical
record again. Only cases the committee has scored can be added (the conference discusses the
committee's view), and the chair may correct a copied text before showing it.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from audit import log as audit
from portal.accounts import roles
from portal.core.errors import InvalidRecord, RecordConflict, RecordNotFound
from portal.peer.deidentify import Identifiers, deidentify
from portal.peer.models import TeachingCase, TeachingSet
from portal.review.errors import ReviewForbidden
from portal.review.models import Comparison, DiscrepancyCategory, Review, Verdict

MAX_TITLE = 200
MAX_DESCRIPTION = 5_000
MAX_TEXT = 50_000
MAX_CASES = 200

User = get_user_model()
_LABELS = dict(DiscrepancyCategory.choices)


def _require_chair(actor: AbstractBaseUser) -> None:
    if not roles.can_assign(actor):
        raise ReviewForbidden("Only the QA chair builds teaching sets.")


def teaching_set_create(
    *,
    title: str,
    conference_date: dt.date | None,
    description: str,
    actor: AbstractBaseUser,
    context: audit.AuditContext,
) -> TeachingSet:
    """Start an empty teaching set (title required; no case text yet, so nothing to de-identify)."""
    _require_chair(actor)
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidRecord(f"Give the set a title of at most {MAX_TITLE} characters.", field="title")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidRecord(
            f"The description is limited to {MAX_DESCRIPTION} characters.", field="description"
        )
    with transaction.atomic():
        teaching_set = TeachingSet.objects.create(
            title=title, conference_date=conference_date, description=description.strip(), created_by=actor
        )
        audit.record(
            "teaching_set.create",
            actor=actor,
            context=context,
            object_type="teaching_set",
            object_id=teaching_set.pk,
        )
    return teaching_set


def current_review(comparison: Comparison) -> Review | None:
    """The committee's latest review of the case that no later one corrects."""
    return (
        Review.objects.filter(comparison=comparison, superseded_by__isnull=True)
        .order_by("-submitted_at", "-pk")
        .first()
    )


def identifiers_of(comparison: Comparison, review: Review | None) -> Identifiers:
    """Every identifier the record knows for a case: patient, study, signer, referrer, reviewer."""
    study = comparison.study
    patient = study.patient
    clinician = comparison.reference.clinician
    people = [
        User.objects.filter(pk=pk).first()
        for pk in (
            comparison.radiologist_id,
            clinician.account_id if clinician else None,
            review and review.reviewer_id,
        )
        if pk
    ]
    names = [patient.family_name, patient.given_name, study.referring_physician]
    if clinician is not None:
        names += [clinician.family_name, clinician.given_name, clinician.middle_name]
    for person in people:
        if person is not None:
            names += [person.first_name, person.last_name, person.get_username()]
    numbers = [patient.mrn, study.accession_number, study.study_instance_uid]
    if clinician is not None:
        numbers.append(clinician.identifier)
    return Identifiers.of(names=names, numbers=numbers)


def _discrepancies(review: Review, known: Identifiers) -> list[dict[str, str]]:
    """The discrepancies the committee upheld, in its categories, with de-identified quotes."""
    out = []
    verdicts = review.verdicts.select_related("discrepancy").order_by("discrepancy_id")
    for verdict in verdicts:
        if verdict.verdict == Verdict.NOT_A_DISCREPANCY:
            continue
        d = verdict.discrepancy
        category = verdict.category or d.category
        out.append(
            {
                "category": category,
                "category_label": _LABELS.get(category, category),
                "significance": d.significance,
                "finding": deidentify(d.finding, known),
                "ai_draft_says": deidentify(d.candidate_text, known),
                "signed_report_says": deidentify(d.reference_text, known),
                "committee": verdict.get_verdict_display(),
            }
        )
    return out


def teaching_case_add(
    *, teaching_set: TeachingSet, comparison_id: int, actor: AbstractBaseUser, context: audit.AuditContext
) -> TeachingCase:
    """Copy an adjudicated case into the set, de-identified, at the end (once per set)."""
    _require_chair(actor)
    comparison = (
        Comparison.objects.select_related("study__patient", "candidate", "reference__clinician")
        .filter(pk=comparison_id)
        .first()
    )
    if comparison is None:
        raise RecordNotFound("No such case.")
    review = current_review(comparison)
    if review is None:
        raise InvalidRecord("Only cases the committee has scored can be taught.", field="case")
    known = identifiers_of(comparison, review)
    try:
        with transaction.atomic():
            locked = TeachingSet.objects.select_for_update().get(pk=teaching_set.pk)  # positions in order
            count = locked.cases.count()
            if count >= MAX_CASES:
                raise InvalidRecord(f"A teaching set holds at most {MAX_CASES} cases.", field="case")
            position = (locked.cases.aggregate(m=Max("position"))["m"] or 0) + 1
            case = TeachingCase.objects.create(
                teaching_set=locked,
                comparison=comparison,
                position=position,
                specialty=comparison.specialty,
                modality=comparison.modality,
                radpeer=review.radpeer,
                ai_draft=deidentify(comparison.candidate.text, known),
                signed_report=deidentify(comparison.reference.text, known),
                discrepancies=_discrepancies(review, known),
                committee_comment=deidentify(review.comment, known),
                added_by=actor,
            )
            audit.record(
                "teaching_case.add",
                actor=actor,
                context=context,
                object_type="teaching_case",
                object_id=case.pk,
                patient_id=comparison.study.patient_id,
                study_id=comparison.study_id,
                details={"teaching_set": locked.pk, "comparison": comparison.pk, "review": review.pk},
            )
    except IntegrityError as exc:
        raise RecordConflict("This case is already in the set.", field="case") from exc
    return case


def teaching_case_edit(
    *,
    case: TeachingCase,
    ai_draft: str,
    signed_report: str,
    committee_comment: str,
    actor: AbstractBaseUser,
    context: audit.AuditContext,
) -> TeachingCase:
    """The chair corrects the copied texts; they pass through de-identification again before saving."""
    _require_chair(actor)
    if any(len(t) > MAX_TEXT for t in (ai_draft, signed_report, committee_comment)):
        raise InvalidRecord(f"Texts are limited to {MAX_TEXT} characters.", field="text")
    if not ai_draft.strip() or not signed_report.strip():
        raise InvalidRecord("Neither report text may be empty.", field="text")
    source = (
        Comparison.objects.select_related("study__patient", "reference__clinician")
        .filter(pk=case.comparison_id)
        .first()
    )
    # A purged source leaves only the patterns to catch identifiers the chair might type in.
    known = identifiers_of(source, current_review(source)) if source is not None else None
    with transaction.atomic():
        case.ai_draft = deidentify(ai_draft, known)
        case.signed_report = deidentify(signed_report, known)
        case.committee_comment = deidentify(committee_comment, known)
        case.save(update_fields=["ai_draft", "signed_report", "committee_comment"])
        audit.record(
            "teaching_case.edit",
            actor=actor,
            context=context,
            object_type="teaching_case",
            object_id=case.pk,
            details={"teaching_set": case.teaching_set_id},
        )
    return case


def teaching_case_remove(*, case: TeachingCase, actor: AbstractBaseUser, context: audit.AuditContext) -> None:
    """Take a case out of its set (the source case and its review are untouched)."""
    _require_chair(actor)
    with transaction.atomic():
        audit.record(
            "teaching_case.remove",
            actor=actor,
            context=context,
            object_type="teaching_case",
            object_id=case.pk,
            details={"teaching_set": case.teaching_set_id, "comparison": case.comparison_id},
        )
        case.delete()


def teaching_export_record(
    *, teaching_set: TeachingSet, export_format: str, actor: AbstractBaseUser, context: audit.AuditContext
) -> None:
    """Audit a download of a set (the content is de-identified, the act is still recorded)."""
    _require_chair(actor)
    with transaction.atomic():
        audit.record(
            "teaching_set.export",
            actor=actor,
            context=context,
            object_type="teaching_set",
            object_id=teaching_set.pk,
            details={"format": export_format, "cases": teaching_set.cases.count()},
        )
