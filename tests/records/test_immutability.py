"""AI outputs and signed reports are immutable in the database itself, whatever the SQL."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from portal.records.models import AIOutput, SignedReport
from tests.factories import ai_output_json, signed_report_json, study_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(ris):
    ris.post("/api/v1/studies", study_json(), format="json")
    ris.post("/api/v1/ai-outputs", ai_output_json(), format="json")
    ris.post("/api/v1/signed-reports", signed_report_json(), format="json")
    return AIOutput.objects.get(), SignedReport.objects.get()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE records_aioutput SET text = 'rewritten'",
        "DELETE FROM records_aioutput",
        "UPDATE records_signedreport SET text = 'rewritten'",
        "UPDATE records_signedreport SET signed_at = signed_at",
        "DELETE FROM records_signedreport",
    ],
)
def test_raw_sql_cannot_change_or_delete_evidence(stored, sql):
    with (
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)

    output, report = stored
    output.refresh_from_db()
    report.refresh_from_db()
    assert output.text.startswith("FINDINGS")
    assert report.text.startswith("INDICATION")


# Committed data (transaction=True): PostgreSQL refuses TRUNCATE while the inserting transaction still
# has deferred foreign-key checks pending, which would hide what the trigger does.
@pytest.mark.django_db(transaction=True)
def test_emptying_the_table_is_refused(stored):
    # PostgreSQL has TRUNCATE (a statement trigger); SQLite's equivalent is DELETE without WHERE.
    sql = (
        "TRUNCATE records_signedreport CASCADE"
        if connection.vendor == "postgresql"
        else ("DELETE FROM records_signedreport WHERE 1 = 1")
    )
    with (
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)

    assert SignedReport.objects.count() == 1


def test_the_orm_cannot_save_changes_either(stored):
    output, _ = stored
    output.text = "rewritten"

    with pytest.raises(IntegrityError), transaction.atomic():
        output.save()


def test_every_role_has_its_group_after_migrate():
    from django.contrib.auth.models import Group

    from portal.accounts.roles import Role

    assert {role.value for role in Role} <= set(Group.objects.values_list("name", flat=True))
