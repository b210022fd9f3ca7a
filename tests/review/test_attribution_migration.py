"""The attribution migration on a database with reviews from before it: a discrepant score keeps
meaning "the radiologist erred", cases name their signing clinician, reviews stay immutable."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("review", "0004_committee_rollup"), ("records", "0007_study_without_accession")]
AFTER = [("review", "0005_attribution_marks_clinician")]


def _migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def _latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_older_reviews_and_cases_are_carried_over():
    old = _migrate(BEFORE)
    user = old.get_model("auth", "User").objects.create(username="dr_mig")
    reviewer = old.get_model("auth", "User").objects.create(username="rev_mig")
    clinician = old.get_model("records", "Clinician").objects.create(
        authority="RIS", identifier="M-1", account=user
    )
    patient = old.get_model("records", "Patient").objects.create(mrn="MRN-MIG")
    study = old.get_model("records", "Study").objects.create(accession_number="ACC-MIG", patient=patient)
    model = old.get_model("records", "ModelVersion").objects.create(name="m", version="1")
    when = dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC)
    draft = old.get_model("records", "AIOutput").objects.create(
        study=study,
        kind="report_draft",
        model_version=model,
        text="x",
        text_sha256="0" * 64,
        payload_sha256="0" * 64,
        generated_at=when,
    )
    report = old.get_model("records", "SignedReport").objects.create(
        study=study,
        radiologist=user,
        clinician=clinician,
        text="y",
        text_sha256="0" * 64,
        payload_sha256="0" * 64,
        signed_at=when,
    )
    comparison = old.get_model("review", "Comparison").objects.create(
        study=study,
        candidate=draft,
        reference=report,
        radpeer_suggested="2b",
        study_date=when,
        radiologist=user,
    )
    Review = old.get_model("review", "Review")
    Review.objects.create(comparison=comparison, reviewer=reviewer, radpeer="2b")
    Review.objects.create(comparison=comparison, reviewer=user, radpeer="1")

    new = _migrate(_latest())

    migrated = dict(new.get_model("review", "Review").objects.values_list("radpeer", "radiologist_erred"))
    assert migrated == {"2b": True, "1": False}
    assert new.get_model("review", "Comparison").objects.get().clinician_id == clinician.pk
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE review_review SET radpeer = '1'")
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM review_review")
