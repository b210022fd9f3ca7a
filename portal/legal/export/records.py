"""``records/<accession>/``: one folder per study, written by a list of small section writers.

Each writer takes a :class:`StudyBundle` (the study with its rows, loaded in bulk for a chunk of
studies) and returns ``(file name, JSON value)`` or None when it has nothing to say. To add a section,
write a function and append it to :data:`SECTION_WRITERS`, and extend :func:`load_chunk` if it needs
rows that are not loaded yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import Prefetch

from inference.models import ReinferenceResult
from portal.legal.export.deid import Identity
from portal.records.models import AIOutput, ModelVersion, SignedReport, Study
from portal.review.models import Comparison, Discrepancy, Feedback, Review

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def iso(value: dt.datetime | dt.date | None) -> str | None:
    """ISO 8601; datetimes in UTC with a Z."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


@dataclasses.dataclass
class StudyBundle:
    """One study and everything the package says about it."""

    study: Study
    ai_outputs: list[AIOutput]
    reports: list[SignedReport]
    comparisons: list[Comparison]
    deid: Identity
    reinference: list[ReinferenceResult] = dataclasses.field(default_factory=list)
    folder: str = ""

    @property
    def patient_key(self) -> int:
        """The key of the patient's date offset and identifier list."""
        return self.study.patient_id


def signer(report: SignedReport) -> str:
    """Who signed a report: the linked account's user name, else the clinician as the RIS named them
    (new readers and locums sign before anyone creates an account for them)."""
    if report.radiologist is not None:
        return report.radiologist.get_username()
    return report.clinician.display_name


def folder_name(accession: str, study_pk: int, taken: set[str]) -> str:
    """A safe, unique folder name: the accession number, or a cleaned form plus the study id."""
    clean = _UNSAFE.sub("_", accession)[:64].strip(".") or "study"
    name = clean if clean == accession else f"{clean}-{study_pk}"
    while name in taken:
        name = f"{name}-{study_pk}"
    taken.add(name)
    return name


def load_chunk(study_ids: list[int], deid: Identity) -> list[StudyBundle]:
    """Load a chunk of studies with their outputs, reports, comparisons and discrepancies (fixed queries)."""
    studies = (
        Study.objects.filter(pk__in=study_ids)
        .select_related("patient")
        .prefetch_related(
            Prefetch(
                "ai_outputs", AIOutput.objects.select_related("model_version").order_by("generated_at", "id")
            ),
            Prefetch(
                "signed_reports",
                SignedReport.objects.select_related("radiologist", "clinician").order_by("signed_at", "id"),
            ),
            Prefetch(
                "comparisons",
                Comparison.objects.order_by("created_at", "id").prefetch_related(
                    Prefetch("discrepancies", Discrepancy.objects.order_by("id")),
                    Prefetch(
                        "reviews",
                        Review.objects.select_related("reviewer")
                        .prefetch_related("verdicts")
                        .order_by("submitted_at", "id"),
                    ),
                    Prefetch(
                        "feedback",
                        Feedback.objects.select_related("radiologist").order_by("created_at", "id"),
                    ),
                ),
            ),
        )
        .order_by("id")
    )
    results: dict[int, list[ReinferenceResult]] = {}
    rows = ReinferenceResult.objects.filter(study_id__in=study_ids).select_related("run__model_version")
    for result in rows.order_by("created_at", "id"):
        results.setdefault(result.study_id, []).append(result)
    bundles = []
    for study in studies:
        bundle = StudyBundle(
            study=study,
            ai_outputs=list(study.ai_outputs.all()),
            reports=list(study.signed_reports.all()),
            comparisons=list(study.comparisons.all()),
            deid=deid,
            reinference=results.get(study.pk, []),
        )
        patient = study.patient
        people = [signer(r) for r in bundle.reports]
        people += [review.reviewer.get_username() for c in bundle.comparisons for review in c.reviews.all()]
        people += [r.radiologist.get_full_name() for r in bundle.reports if r.radiologist is not None]
        people += [f"{r.clinician.given_name} {r.clinician.family_name}".strip() for r in bundle.reports]
        deid.learn(
            patient_key=study.patient_id,
            identifiers=[
                patient.mrn,
                patient.family_name,
                patient.given_name,
                f"{patient.given_name} {patient.family_name}",
                f"{patient.family_name}, {patient.given_name}",
                study.accession_number,
                study.study_instance_uid or "",
                study.referring_physician,
                *people,
            ],
        )
        bundles.append(bundle)
    return bundles


def model_version_json(version: ModelVersion) -> dict[str, Any]:
    """The registry entry an output points at: artifact hashes, card, lineage, metrics."""
    return {
        "name": version.name,
        "version": version.version,
        "status": version.status,
        "architecture": version.architecture,
        "specialties": version.specialties,
        "kinds": version.kinds,
        "quantisation": version.quantisation,
        "artifact_sha256": version.artifact_sha256,
        "artifacts": version.artifacts,
        "tokenizer_sha256": version.tokenizer_sha256,
        "card": version.card,
        "lineage": version.lineage,
        "metrics": version.metrics,
        "generation_defaults": version.generation_defaults,
        "parent": str(version.parent_id) if version.parent_id else None,
        "registered_at": iso(version.created_at),
    }


# --- sections -------------------------------------------------------------------------------------


def study_section(b: StudyBundle) -> tuple[str, Any]:
    """study.json: the study, its patient (identified packages only) and the DICOM header as JSON."""
    s, d, key = b.study, b.deid, b.patient_key
    patient = s.patient
    value: dict[str, Any] = {
        "accession_number": d.accession(s.accession_number) if s.accession_number else None,
        "study_instance_uid": d.uid(s.study_instance_uid) if s.study_instance_uid else None,
        "patient": {
            "id": d.patient(key, patient.mrn),
            "family_name": None if d.deidentified else patient.family_name,
            "given_name": None if d.deidentified else patient.given_name,
            "birth_date": None if d.deidentified else iso(patient.birth_date),
            "sex": None if d.deidentified else patient.sex,
        },
        "modality": s.modality,
        "body_part": s.body_part,
        "specialty": s.specialty,
        "study_datetime": iso(d.datetime(s.study_datetime, key)),
        "description": d.text(s.description, key),
        "priority": s.priority,
        "referring_physician": d.person(s.referring_physician),
        "dicom_header": d.dicom_header(s.dicom_header, key),
        "recorded_at": iso(d.datetime(s.created_at, key)),
    }
    if not d.deidentified:
        value["study_id"] = s.pk
        value["patient"]["internal_id"] = s.patient_id
    return "study.json", value


def ai_outputs_section(b: StudyBundle) -> tuple[str, Any]:
    """ai_outputs.json: every AI output with its inputs, decoding settings and model version."""
    d, key = b.deid, b.patient_key
    outputs = []
    for o in b.ai_outputs:
        outputs.append(
            {
                "id": None if d.deidentified else o.pk,
                "kind": o.kind,
                "origin": o.origin,
                "generated_at": iso(d.datetime(o.generated_at, key)),
                "recorded_at": iso(d.datetime(o.created_at, key)),
                "text": d.text(o.text, key),
                # The stored hashes cover the original text; a de-identified text no longer matches them.
                "text_sha256": None if d.deidentified else o.text_sha256,
                "payload_sha256": None if d.deidentified else o.payload_sha256,
                "inputs": d.json(o.inputs, key),
                "generation_settings": o.generation_settings,
                "prompt_tokens": o.prompt_tokens,
                "completion_tokens": o.completion_tokens,
                "latency_ms": o.latency_ms,
                "model_version": model_version_json(o.model_version),
            }
        )
    return "ai_outputs.json", outputs


def signed_reports_section(b: StudyBundle) -> tuple[str, Any]:
    """signed_reports.json: the final report and every addendum or correction, in signing order."""
    d, key = b.deid, b.patient_key
    reports = []
    for r in b.reports:
        reports.append(
            {
                "id": None if d.deidentified else r.pk,
                "ref": f"report-{r.pk}" if not d.deidentified else f"report-{b.reports.index(r) + 1}",
                "status": r.status,
                "amends": (
                    None
                    if r.amends_id is None
                    else (f"report-{r.amends_id}" if not d.deidentified else "an earlier report in this file")
                ),
                "radiologist": d.person(signer(r)),
                "signed_at": iso(d.datetime(r.signed_at, key)),
                "recorded_at": iso(d.datetime(r.created_at, key)),
                "sections": d.json(r.sections, key),
                "text": d.text(r.text, key),
                "text_sha256": None if d.deidentified else r.text_sha256,
                "payload_sha256": None if d.deidentified else r.payload_sha256,
            }
        )
    return "signed_reports.json", reports


def comparisons_section(b: StudyBundle) -> tuple[str, Any] | None:
    """comparisons.json: each engine run (AI output vs signed report) with its discrepancies."""
    d, key = b.deid, b.patient_key
    if not b.comparisons:
        return None
    out = []
    for c in b.comparisons:
        out.append(
            {
                "id": None if d.deidentified else c.pk,
                "candidate_ai_output": None if d.deidentified else c.candidate_id,
                "reference_report": None if d.deidentified else c.reference_id,
                "radpeer_suggested": c.radpeer_suggested,
                "scores": c.scores,
                "significant_count": c.significant_count,
                "minor_count": c.minor_count,
                "created_at": iso(d.datetime(c.created_at, key)),
                "discrepancies": [
                    {
                        "category": x.category,
                        "significance": x.significance,
                        "finding": d.text(x.finding, key),
                        "candidate_text": d.text(x.candidate_text, key),
                        "candidate_span": [x.candidate_start, x.candidate_end],
                        "reference_text": d.text(x.reference_text, key),
                        "reference_span": [x.reference_start, x.reference_end],
                        "explanation": d.text(x.explanation, key),
                    }
                    for x in c.discrepancies.all()
                ],
            }
        )
    return "comparisons.json", out


def qa_reviews_section(b: StudyBundle) -> tuple[str, Any] | None:
    """qa_reviews.json: the committee's RADPEER reviews (with per-discrepancy verdicts) and the feedback
    sent to the radiologist, with its acknowledgement."""
    d, key = b.deid, b.patient_key
    out = []
    for c in b.comparisons:
        positions = {x.pk: n for n, x in enumerate(c.discrepancies.all())}
        for review in c.reviews.all():
            out.append(
                {
                    "comparison": None if d.deidentified else c.pk,
                    "review": None if d.deidentified else review.pk,
                    "supersedes": None if d.deidentified else review.supersedes_id,
                    "reviewer": d.person(review.reviewer.get_username()),
                    "radpeer": review.radpeer,
                    # Who erred, as the committee judged against the images (RADPEER grades only the
                    # radiologist's report; an AI-only error is the model's).
                    "radiologist_erred": review.radiologist_erred,
                    "ai_erred": review.ai_erred,
                    "carried_ai_error": review.carried_ai_error,
                    "comment": d.text(review.comment, key),
                    "submitted_at": iso(d.datetime(review.submitted_at, key)),
                    "verdicts": [
                        {
                            "discrepancy_index": positions.get(v.discrepancy_id),
                            "verdict": v.verdict,
                            "category": v.category,
                            "correct_side": v.correct_side,
                            "carried_into_report": v.carried_into_report,
                        }
                        for v in review.verdicts.all()
                    ],
                    "feedback": [
                        {
                            "radiologist": d.person(f.radiologist.get_username()),
                            "message": d.text(f.message, key),
                            "created_at": iso(d.datetime(f.created_at, key)),
                            "acknowledged_at": iso(d.datetime(f.acknowledged_at, key)),
                        }
                        for f in c.feedback.all()
                        if f.review_id == review.pk
                    ],
                }
            )
    return ("qa_reviews.json", out) if out else None


def reinference_section(b: StudyBundle) -> tuple[str, Any] | None:
    """reinference.json: what later model versions produced for this study, and how they compared."""
    d, key = b.deid, b.patient_key
    if not b.reinference:
        return None
    out = []
    for r in b.reinference:
        out.append(
            {
                "run": None if d.deidentified else r.run_id,
                "model_version": model_version_json(r.run.model_version),
                "status": r.status,
                "error": d.text(r.error, key),
                "text": d.text(r.text, key),
                "text_sha256": None if d.deidentified else r.text_sha256,
                "reproduced": r.reproduced,
                "radpeer_suggested": r.radpeer_suggested,
                "significant_count": r.significant_count,
                "minor_count": r.minor_count,
                "categories": r.categories,
                "discrepancies": d.json(r.discrepancies, key),
                "original": {
                    "radpeer": r.original_radpeer,
                    "significant_count": r.original_significant_count,
                    "minor_count": r.original_minor_count,
                    "categories": r.original_categories,
                },
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "latency_ms": r.latency_ms,
                "created_at": iso(d.datetime(r.created_at, key)),
            }
        )
    return "reinference.json", out


Section = Callable[[StudyBundle], "tuple[str, Any] | None"]

#: The per-study files, in order. Append writers here to add sections (reviews, feedback, re-inference).
SECTION_WRITERS: list[Section] = [
    study_section,
    ai_outputs_section,
    signed_reports_section,
    comparisons_section,
    qa_reviews_section,
    reinference_section,
]


def sections_of(bundle: StudyBundle, writers: Iterable[Section] = ()) -> list[tuple[str, Any]]:
    """Run every section writer on one study."""
    out = []
    for writer in writers or SECTION_WRITERS:
        produced = writer(bundle)
        if produced is not None:
            out.append(produced)
    return out
