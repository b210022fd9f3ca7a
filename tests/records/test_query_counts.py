"""List endpoints run a bounded number of SQL queries, however many rows a page holds (no N+1)."""

from __future__ import annotations

import pytest

from audit.log import SYSTEM
from portal.records.clinicians import clinician_for_account
from tests.factories import ai_output_json, signed_report_json, study_json
from tests.query_budget import audit_appends

pytestmark = pytest.mark.django_db


@pytest.fixture
def many(ris):
    def load(n: int) -> None:
        for i in range(n):
            accession = f"Q{i:04d}"
            ris.post(
                "/api/v1/studies",
                study_json(accession=accession, mrn=f"MRNQ{i}", study_instance_uid=f"1.2.9.{i}"),
                format="json",
            )
            ris.post("/api/v1/ai-outputs", ai_output_json(accession=accession), format="json")
            ris.post("/api/v1/signed-reports", signed_report_json(accession=accession), format="json")

    return load


# Token, user, groups (role check), the page, the audit head lock, the access-log event and its Merkle
# bookkeeping: a fixed cost per request, never one per row.
MAX_QUERIES_PER_LIST = 12


@pytest.mark.parametrize("path", ["/api/v1/studies", "/api/v1/ai-outputs", "/api/v1/signed-reports"])
@pytest.mark.parametrize("rows", [3, 30])
def test_a_list_page_costs_a_fixed_number_of_queries(
    client_for, many, path, rows, django_assert_max_num_queries
):
    carol = client_for("carol")
    many(rows)

    with django_assert_max_num_queries(MAX_QUERIES_PER_LIST):
        response = carol.get(path)

    assert len(response.json()["results"]) == rows


def test_a_radiologist_list_is_bounded_too(client_for, many, django_assert_max_num_queries):
    many(10)
    alice = client_for("alice")

    with django_assert_max_num_queries(MAX_QUERIES_PER_LIST + 1):  # + the own-cases filter
        response = alice.get("/api/v1/signed-reports")

    assert len(response.json()["results"]) == 10


def test_storing_a_signed_report_costs_a_fixed_number_of_queries(
    ris, personas, django_assert_max_num_queries
):
    ris.post("/api/v1/studies", study_json(), format="json")
    ris.post("/api/v1/ai-outputs", ai_output_json(), format="json")
    # alice has signed before: her clinician entry exists (its first creation is a one-off cost).
    clinician_for_account(user=personas["alice"], actor=None, context=SYSTEM)

    # Auth, study and radiologist lookups, the natural-key and one-final check (one query), the
    # insert, and the audit append (sequence number, event; PostgreSQL also the table lock), inside
    # one savepointed transaction. Was 18 (16 measured) before ingest units batched the audit append.
    with django_assert_max_num_queries(13 + audit_appends()):
        response = ris.post("/api/v1/signed-reports", signed_report_json(), format="json")

    assert response.status_code == 201
