"""One unit of ingestion work: a transaction whose audit events are appended together at its end.

Every write path of the clinical record (a REST call, one HL7 message, one FHIR resource or Bundle, one
DICOM file) runs as an :func:`ingest_unit`. The outermost unit is ``transaction.atomic()`` plus
:func:`audit.log.batch` (all its events appended with one sequence statement and one INSERT, just
before the commit). A unit nested in another adds neither a savepoint nor a batch of its own: the
outer unit already makes the whole message all or nothing, and every caller of a nested unit lets its
refusal propagate, so the outer transaction is rolled back whole. (A caller that wants to catch a
refusal and go on must run the call in a unit of its own, outside any other.) Savepoints that catch
an IntegrityError of a concurrent duplicate stay where they are (``services._insert_or_fetch``).

The outermost unit also holds a lookup cache (:func:`remembered`): rows the unit has read or written
(a study, a patient, a model version, a clinician), so that a message or Bundle that names one several
times reads it once. Only rows found or created are kept, never a miss; the cache ends with the unit,
so a retried or refused unit never sees rows of a transaction that rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import connection, transaction

from audit import log as audit


@contextmanager
def ingest_unit() -> Iterator[None]:
    """A transaction with batched audit events; nested in another unit, part of that one. Decorator too."""
    if audit.batch_open():
        with transaction.atomic(savepoint=False):
            yield
        return
    setattr(connection, _CACHE, {})
    try:
        with transaction.atomic(), audit.batch():
            yield
    finally:
        setattr(connection, _CACHE, None)


T = TypeVar("T")
# The connection attribute holding the open unit's lookup cache (connections are per thread).
_CACHE = "_ingest_unit_cache"


def remembered(key: Hashable, load: Callable[[], T | None]) -> T | None:
    """The row cached under ``key`` in the open unit, else ``load()`` (kept when it found one).

    Outside a unit it is just ``load()``.
    """
    cache: dict | None = getattr(connection, _CACHE, None)
    if cache is None:
        return load()
    found = cache.get(key)
    if found is None:
        found = load()
        if found is not None:
            cache[key] = found
    return found


def cached(key: Hashable) -> object | None:
    """The row the open unit keeps under ``key``, or None (no query)."""
    cache: dict | None = getattr(connection, _CACHE, None)
    return cache.get(key) if cache is not None else None


def remember(key: Hashable, row: object) -> None:
    """Keep a row the open unit created, for its later lookups (no-op outside a unit)."""
    cache: dict | None = getattr(connection, _CACHE, None)
    if cache is not None:
        cache[key] = row
