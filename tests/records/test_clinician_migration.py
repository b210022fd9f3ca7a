"""The clinician migrations on a database made before them: each stored report gets its signer's clinician."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("records", "0004_model_registry")]


def _migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def _latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_existing_reports_are_signed_by_their_accounts_clinician_and_stay_immutable():
    old = _migrate(BEFORE)
    user = old.get_model("auth", "User").objects.create(username="dr_old", first_name="Olga", last_name="Old")
    patient = old.get_model("records", "Patient").objects.create(mrn="MRN-OLD")
    study = old.get_model("records", "Study").objects.create(accession_number="ACC-OLD", patient=patient)
    signed_at = dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC)
    old.get_model("records", "SignedReport").objects.create(
        study=study,
        radiologist=user,
        sections={"impression": "Normal."},
        text="IMPRESSION:\nNormal.",
        text_sha256="0" * 64,
        payload_sha256="0" * 64,
        signed_at=signed_at,
    )

    new = _migrate(_latest())

    report = new.get_model("records", "SignedReport").objects.get()
    clinician = new.get_model("records", "Clinician").objects.get(pk=report.clinician_id)
    assert (clinician.authority, clinician.identifier) == ("portal", "dr_old")
    assert (clinician.family_name, clinician.given_name, clinician.account_id) == ("Old", "Olga", user.pk)
    assert new.get_model("records", "Study").objects.get().accession_number == "ACC-OLD"
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE records_signedreport SET text = 'changed'")
