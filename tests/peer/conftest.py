"""Fixtures of the peer-learning tests: cases built through review's services, page clients per persona."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.test import Client

from audit.log import SYSTEM
from portal.records.models import AIOutput, Clinician, ModelVersion, Patient, SignedReport, Study, sha256_text
from portal.review import services
from portal.review.models import Comparison, Review

_counter = itertools.count(1)

DRAFT = (
    "FINDINGS:\nSmall left pleural effusion. No pneumothorax.\n\nIMPRESSION:\nSmall left pleural effusion."
)
SIGNED = (
    "INDICATION: Cough. Patient Ada Testperson, MRN {mrn}, accession {accession}.\n"
    "COMPARISON: Chest radiograph dated 03/01/2026.\n\n"
    "FINDINGS:\nNo pleural effusion. Large right pneumothorax.\n\n"
    "IMPRESSION:\nRight pneumothorax.\n"
    "Critical result communicated to Dr. Okafor by telephone at 10:42 on 2026-03-04."
)


@pytest.fixture
def model_version(db) -> ModelVersion:
    """The model version every test case's draft names."""
    return ModelVersion.objects.create(name="concordance-chest", version="1.0.0", artifact_sha256="a" * 64)


@pytest.fixture
def make_case(model_version):
    """``make_case(radiologist, ...)``: a study, its AI draft and signed report, their comparison."""

    def build(
        radiologist,
        *,
        specialty: str = "chest",
        modality: str = "CR",
        draft: str = DRAFT,
        linked_only: bool = False,
    ) -> Comparison:
        """``linked_only``: the report names only the clinician, whom an admin linked to ``radiologist``."""
        n = next(_counter)
        when = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
        mrn, accession = f"MRN{7_000_000 + n}", f"ACC-PEER{n:05d}"
        patient = Patient.objects.create(mrn=mrn, family_name="Testperson", given_name="Ada")
        study = Study.objects.create(
            accession_number=accession,
            patient=patient,
            modality=modality,
            specialty=specialty,
            study_datetime=when,
            description="XR CHEST",
            referring_physician="Grey, Meredith",
        )
        output = AIOutput.objects.create(
            study=study,
            kind="report_draft",
            model_version=model_version,
            inputs={"indication": "Cough"},
            generation_settings={"decoding": "greedy"},
            text=draft,
            text_sha256=sha256_text(draft),
            payload_sha256="b" * 64,
            generated_at=when + dt.timedelta(minutes=5),
        )
        signed = SIGNED.format(mrn=mrn, accession=accession)
        clinician, _ = Clinician.objects.get_or_create(
            authority="local",
            identifier=f"R{radiologist.pk}",
            defaults={"family_name": "Okonkwo", "given_name": "Chidi", "account": radiologist},
        )
        report = SignedReport.objects.create(
            study=study,
            radiologist=None if linked_only else radiologist,
            clinician=clinician,
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
def adjudicate():
    """``adjudicate(case, reviewer, feedback="...")``: the committee scores a case (agreeing with all)."""

    def run(case: Comparison, reviewer, *, feedback: str = "", comment: str = "Teaching point.") -> Review:
        # The signed report erred (the committee's attribution), hence the discrepant score.
        verdicts = {
            d.pk: services.VerdictInput("agree", correct_side="ai_draft") for d in case.discrepancies.all()
        }
        return services.review_submit(
            comparison=case,
            reviewer=reviewer,
            radpeer="2b",
            comment=comment,
            verdicts=verdicts,
            feedback_message=feedback,
            context=SYSTEM,
        )

    return run


@pytest.fixture
def page_for(personas):
    """``page_for("dana")``: a browser-like client signed in as that persona (``None``: anonymous)."""

    def build(name: str | None) -> Client:
        client = Client()
        if name is not None:
            client.force_login(personas[name])
        return client

    return build


class FakeBroker:
    """Stands in for Celery's ``current_app`` in :mod:`portal.core.enqueue`: records what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list]] = []
        self.down = False

    def send_task(self, name: str, args: list) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.sent.append((name, args))

    def run_all(self) -> None:
        """Deliver what was sent, as a worker would (the task functions run in this process)."""
        from portal.peer import tasks

        pending, self.sent = self.sent, []
        for name, args in pending:
            getattr(tasks, name.rsplit(".", 1)[1])(*args)


@pytest.fixture
def broker(monkeypatch) -> FakeBroker:
    """The broker, recording the tasks sent after each commit."""
    from portal.core import enqueue

    fake = FakeBroker()
    monkeypatch.setattr(enqueue, "current_app", fake)
    return fake
