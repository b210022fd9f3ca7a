"""Fixtures of the re-inference tests: the tiny model and a cohort of signed studies with AI drafts.

``make_cohort`` writes studies whose original drafts the tiny model itself produced (so a re-run of the
same version must reproduce them byte for byte) or, with ``model_version`` set to another version,
drafts from a model that ran elsewhere (reproduction is then not judged).
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from tests.model_fixtures import tiny_model_version  # noqa: F401

CONCEPTS = [
    ("pleural_effusion", "pleural effusion", "Small left pleural effusion."),
    ("pneumothorax", "pneumothorax", "Small right apical pneumothorax."),
    ("consolidation", "consolidation", "Right lower lobe consolidation."),
    ("cardiomegaly", "cardiomegaly", "The heart is enlarged."),
]
_counter = itertools.count(1)


def inputs_for(index: int, *, specialty: str = "chest", modality: str = "CR") -> dict:
    """Structured inputs in the upstream imaging AI's schema (varied by ``index``)."""
    concept, display, _sentence = CONCEPTS[index % len(CONCEPTS)]
    return {
        "specialty": specialty,
        "modality": modality,
        "body_part": "CHEST",
        "study_description": "XR CHEST 2 VIEWS",
        "indication": ["Cough.", "Fever.", "Shortness of breath."][index % 3],
        "prior_report_accession": None,
        "findings": [{"concept": concept, "display": display, "laterality": ["left", "right"][index % 2]}],
        "negatives": [{"concept": "pneumothorax", "display": "pneumothorax"}] if index % 2 else [],
    }


@pytest.fixture
def other_version(db):
    """A version that ran elsewhere: registered by name only, no artifacts here."""
    from portal.records.models import ModelVersion

    return ModelVersion.objects.create(name="vendor-model", version="9.1")


@pytest.fixture
def make_cohort(db, personas):
    """``make_cohort(n, model_version, ...)`` -> list of Study: each with an AI draft and a final report."""
    from inference import runtime
    from portal.records.models import AIOutput, Patient, SignedReport, Study, sha256_text

    def build(
        n: int,
        model_version,
        *,
        specialty: str = "chest",
        modality: str = "CR",
        radiologist: str = "alice",
        start: dt.datetime = dt.datetime(2026, 1, 10, 9, 0, tzinfo=dt.UTC),
        inputs_override: dict | None = None,
        with_report: bool = True,
    ) -> list:
        studies = []
        all_inputs = [inputs_for(i, specialty=specialty, modality=modality) for i in range(n)]
        if model_version.is_runnable:
            texts = [g.text for g in runtime.generate(model_version, "report_draft", all_inputs)]
        else:
            texts = [f"FINDINGS:\n{CONCEPTS[i % len(CONCEPTS)][2]}" for i in range(n)]
        for i in range(n):
            number = next(_counter)
            patient = Patient.objects.create(mrn=f"MRN-R{number:05d}")
            study = Study.objects.create(
                accession_number=f"ACC-R{number:05d}",
                patient=patient,
                modality=modality,
                body_part="CHEST",
                specialty=specialty,
                study_datetime=start + dt.timedelta(days=i),
            )
            inputs = inputs_override if inputs_override is not None else all_inputs[i]
            # A random tiny model may stop at once; an empty draft cannot be stored (nor happen in care).
            text = texts[i] or "(empty)"
            generated_at = start + dt.timedelta(days=i, minutes=5)
            AIOutput.objects.create(
                study=study,
                kind="report_draft",
                model_version=model_version,
                inputs=inputs,
                generation_settings={"decoding": "greedy"},
                text=text,
                text_sha256=sha256_text(text),
                payload_sha256=sha256_text(f"payload-{number}"),
                latency_ms=40.0 + i,
                completion_tokens=20,
                generated_at=generated_at,
            )
            if with_report:
                sentence = CONCEPTS[i % len(CONCEPTS)][2]
                report = f"FINDINGS:\n{sentence}\n\nIMPRESSION:\n{sentence}"
                SignedReport.objects.create(
                    study=study,
                    radiologist=personas[radiologist],
                    sections={"findings": sentence, "impression": sentence},
                    text=report,
                    text_sha256=sha256_text(report),
                    payload_sha256=sha256_text(f"report-{number}"),
                    signed_at=generated_at + dt.timedelta(hours=1),
                )
            studies.append(study)
        return studies

    return build
