"""Deadlock victims are run again, whole; other database errors and nested calls are not."""

from __future__ import annotations

import pytest
from django.db import OperationalError, transaction

from portal.records.ingest import store


class _Cause(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _failing(times: int, sqlstate: str):
    calls = {"n": 0}

    def work() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise OperationalError("deadlock detected") from _Cause(sqlstate)
        return "done"

    return work, calls


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_victim_is_run_again_until_it_commits():
    work, calls = _failing(2, "40P01")

    assert store.retrying(work) == "done"
    assert calls["n"] == 3


@pytest.mark.django_db(transaction=True)
def test_it_gives_up_after_the_last_attempt():
    work, calls = _failing(10, "40001")

    with pytest.raises(OperationalError):
        store.retrying(work)
    assert calls["n"] == store.RETRY_ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_are_not_retried():
    work, calls = _failing(1, "08006")  # connection failure: the caller answers 503

    with pytest.raises(OperationalError):
        store.retrying(work)
    assert calls["n"] == 1


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_nothing_is_retried():
    work, calls = _failing(1, "40P01")

    with pytest.raises(OperationalError), transaction.atomic():
        store.retrying(work)
    assert calls["n"] == 1
