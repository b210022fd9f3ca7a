"""Fixtures of the operations pages: page clients per persona, a cohort of signed studies, a tiny model.

``make_studies(n, model_version)`` writes studies each with an AI draft (by ``model_version``; the drafts
are plain texts, so a re-run judges discrepancies, not reproduction) and a final signed report by alice.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.test import Client

from tests.model_fixtures import tiny_model_version  # noqa: F401

_counter = itertools.count(1)

SENTENCES = [
    "Small left pleural effusion.",
    "Small right apical pneumothorax.",
    "Right lower lobe consolidation.",
    "The heart is enlarged.",
]


@pytest.fixture
def page_for(personas):
    """``page_for(name)``: a browser-like test client signed in as that persona (CSRF not enforced)."""

    def build(name: str) -> Client:
        client = Client()
        client.force_login(personas[name])
        return client

    return build


@pytest.fixture
def root(personas):
    """An account holding the admin role."""
    from django.contrib.auth.models import Group

    user = personas["eve"].__class__.objects.create_user(username="root")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    return user


@pytest.fixture
def make_studies(db, personas):
    """``make_studies(n, model_version, ...)`` -> list of Study, each with an AI draft and a final report."""
    from portal.records.models import AIOutput, Patient, SignedReport, Study, sha256_text

    def build(
        n: int,
        model_version,
        *,
        specialty: str = "chest",
        modality: str = "CR",
        start: dt.datetime = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC),
        mrn: str | None = None,
    ) -> list:
        studies = []
        patient = Patient.objects.create(mrn=mrn, family_name="Doe", given_name="Jane") if mrn else None
        for i in range(n):
            number = next(_counter)
            owner = patient or Patient.objects.create(mrn=f"MRN-O{number:05d}", family_name="Roe")
            study = Study.objects.create(
                accession_number=f"ACC-O{number:05d}",
                patient=owner,
                modality=modality,
                body_part="CHEST",
                specialty=specialty,
                study_datetime=start + dt.timedelta(days=i),
                description="XR CHEST 2 VIEWS",
            )
            sentence = SENTENCES[i % len(SENTENCES)]
            draft = f"FINDINGS:\n{SENTENCES[(i + 1) % len(SENTENCES)]}\n\nIMPRESSION:\nSee findings."
            when = start + dt.timedelta(days=i, minutes=5)
            AIOutput.objects.create(
                study=study,
                kind="report_draft",
                model_version=model_version,
                inputs={
                    "specialty": specialty,
                    "modality": modality,
                    "body_part": "CHEST",
                    "study_description": "XR CHEST 2 VIEWS",
                    "indication": "Cough.",
                    "prior_report_accession": None,
                    "findings": [{"concept": "pleural_effusion", "display": "pleural effusion"}],
                    "negatives": [],
                },
                generation_settings={"decoding": "greedy"},
                text=draft,
                text_sha256=sha256_text(draft),
                payload_sha256=sha256_text(f"ops-payload-{number}"),
                latency_ms=30.0 + i,
                completion_tokens=18,
                generated_at=when,
            )
            report = f"FINDINGS:\n{sentence}\n\nIMPRESSION:\n{sentence}"
            SignedReport.objects.create(
                study=study,
                radiologist=personas["alice"],
                sections={"findings": sentence, "impression": sentence},
                text=report,
                text_sha256=sha256_text(report),
                payload_sha256=sha256_text(f"ops-report-{number}"),
                signed_at=when + dt.timedelta(hours=1),
            )
            studies.append(study)
        return studies

    return build


@pytest.fixture
def other_version_factory(db):
    """``other_version_factory(name=...)``: a version that ran elsewhere (registered by name, no files)."""
    from portal.records.models import ModelVersion

    def build(name: str = "vendor-model", version: str = "9.1") -> ModelVersion:
        return ModelVersion.objects.create(name=name, version=version)

    return build
