"""One unit of ingestion work: a transaction whose audit events are appended together at its end.

Every write path of the clinical record (a REST call, one HL7 message, one FHIR resource or Bundle, one
DICOM file) runs as an :func:`ingest_unit`. The outermost unit is ``transaction.atomic()`` plus
:func:`audit.log.batch` (all its events appended with one sequence statement and one INSERT, just
before the commit). A unit nested in another adds neither a savepoint nor a batch of its own: the
outer unit already makes the whole message all or nothing, and every caller of a nested unit lets its
refusal propagate, so the outer transaction is rolled back whole. (A caller that wants to catch a
refusal and go on must run the call in a unit of its own, outside any other.) Savepoints that catch
an IntegrityError of a concurrent duplicate stay where they are (``services._insert_or_fetch``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction

from audit import log as audit


@contextmanager
def ingest_unit() -> Iterator[None]:
    """A transaction with batched audit events; nested in another unit, part of that one. Decorator too."""
    if audit.batch_open():
        with transaction.atomic(savepoint=False):
            yield
        return
    with transaction.atomic(), audit.batch():
        yield
