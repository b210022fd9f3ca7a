"""Fixtures of the review pages: cases built straight through the services, page clients per persona."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.test import Client

from portal.records.models import AIOutput, ModelVersion, Patient, SignedReport, Study, sha256_text
from portal.review import services
from portal.review.models import Comparison

_counter = itertools.count(1)

DRAFT = (
    "FINDINGS:\nSmall left pleural effusion. No pneumothorax.\n\nIMPRESSION:\nSmall left pleural effusion."
)
SIGNED = "FINDINGS:\nNo pleural effusion. Large right pneumothorax.\n\nIMPRESSION:\nRight pneumothorax."


@pytest.fixture
def model_version(db) -> ModelVersion:
    """The model version every test case's draft names."""
    return ModelVersion.objects.create(name="concordance-chest", version="1.0.0", artifact_sha256="a" * 64)


@pytest.fixture
def make_case(model_version):
    """``make_case(radiologist, ...)``: a study, its AI draft, the signed report and their comparison."""

    def build(
        radiologist,
        *,
        draft: str = DRAFT,
        signed: str = SIGNED,
        specialty: str = "chest",
        modality: str = "CR",
        when: dt.datetime | None = None,
        model: ModelVersion | None = None,
    ) -> Comparison:
        n = next(_counter)
        when = when or dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
        patient = Patient.objects.create(mrn=f"MRN-P{n}", family_name="Testperson", given_name="Ada")
        study = Study.objects.create(
            accession_number=f"ACC-P{n}",
            patient=patient,
            modality=modality,
            specialty=specialty,
            study_datetime=when,
            description="XR CHEST",
        )
        output = AIOutput.objects.create(
            study=study,
            kind="report_draft",
            model_version=model or model_version,
            inputs={"indication": "Cough"},
            generation_settings={"decoding": "greedy"},
            text=draft,
            text_sha256=sha256_text(draft),
            payload_sha256="b" * 64,
            generated_at=when + dt.timedelta(minutes=5),
        )
        report = SignedReport.objects.create(
            study=study,
            radiologist=radiologist,
            sections={"findings": signed},
            text=signed,
            text_sha256=sha256_text(signed),
            payload_sha256="c" * 64,
            signed_at=when + dt.timedelta(hours=1),
        )
        comparison, _ = services.comparison_create(candidate=output, reference=report)
        return comparison

    return build


@pytest.fixture
def page_for(personas):
    """``page_for("carol")``: a browser-like client signed in as that persona (``None``: anonymous)."""

    def build(name: str | None) -> Client:
        client = Client()
        if name is not None:
            client.force_login(personas[name])
        return client

    return build


@pytest.fixture
def case(make_case, personas) -> Comparison:
    """One case signed by alice, with a false finding, a missed finding and more."""
    return make_case(personas["alice"])
