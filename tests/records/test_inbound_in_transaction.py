"""An accepted message's inbound row is written inside its ingestion transaction (one commit); when
that transaction fails after the row was written, the message is still logged, with the failure."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from audit import log as audit_log
from portal.records.models import InboundMessage, InboundOutcome, Study
from tests.adapters.conftest import build_oru

pytestmark = pytest.mark.django_db

URL = "/api/v1/hl7"
ER7 = "x-application/hl7-v2+er7"
SIGNED_BY_ALICE = {32: "alice"}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """MD5 instead of PBKDF2 for the personas: speed of the test only."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_an_accepted_message_is_logged_once_with_its_records(ris):
    response = ris.post(URL, data=build_oru({"OBR": SIGNED_BY_ALICE}), content_type=ER7)

    assert response.status_code == 200
    (row,) = InboundMessage.objects.all()
    assert row.outcome == InboundOutcome.STORED
    assert row.records and row.records[0]["type"] == "signedreport"


def test_a_failure_after_the_row_was_written_still_logs_the_message(ris, monkeypatch):
    def store_down(events):  # noqa: ANN001, ANN202
        raise OperationalError("the database went away at the audit append")

    # The audit append runs after the inbound row was written in the same transaction.
    monkeypatch.setattr(audit_log, "append_sealed", store_down)
    response = ris.post(URL, data=build_oru({"OBR": SIGNED_BY_ALICE}), content_type=ER7)

    assert response.status_code == 503
    assert not Study.objects.exists()
    (row,) = InboundMessage.objects.all()
    assert row.outcome == InboundOutcome.ERROR
    assert row.records == []
