"""Recomputing leaf hashes over ranges of the log, in this process or in worker processes.

The costly part of verifying the log is one canonical JSON encoding and one SHA-256 per event; it is
embarrassingly parallel, so ``verify_audit --full`` splits ``[start, end)`` into one contiguous range
per core and each worker process reads its range with its own database connection. A worker returns
the recomputed leaf hashes (32 bytes each) up to its first problem, and that problem; the parent
folds them into the tree in order, so the first failure reported is the one a sequential pass would
have met first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from hashlib import sha256
from typing import Any

from django.db import connection, transaction

from audit import range_workers
from audit.leaf import leaf_bytes
from audit.models import LEAF_FIELDS, AuditEvent

CHUNK = 5_000
#: Below this many events a single process is faster than starting workers: a spawned worker sets
#: Django up in ~1-2 s, while one process recomputes ~8 us an event (500,000 events ~4 s).
PARALLEL_MIN = 500_000

#: Told how many events of the range have been recomputed so far (for the auditor's progress bar).
Progress = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class RangeResult:
    """Recomputed leaf hashes of ``[start, start + len(leaves) // 32)`` and the first problem met."""

    start: int
    leaves: bytes
    failure_seq: int | None = None
    failure: str = ""
    truncated: bool = False  # the failure is that the stored events end before the range does


def recompute(start: int, end: int, progress: Progress | None = None) -> RangeResult:
    """Recompute the leaves of events ``start .. end - 1``; stop at a missing or altered event.

    ``progress`` is called with the count recomputed so far after every :data:`CHUNK` events.
    """
    out = bytearray()
    expected = start
    with _leaf_rows(start, end) as (rows, decode):
        # One unpacking and one call per row: at a million rows every attribute look-up shows.
        for seq, at, kind, actor, name, action, o_type, o_id, patient, study, details, address, agent, channel, stored in rows:  # fmt: skip # noqa: E501
            if seq != expected:
                return RangeResult(
                    start, bytes(out), expected, f"event {expected} is missing (next stored event is {seq})"
                )
            document = leaf_bytes(
                seq, at, kind, actor, name, action, o_type, o_id, patient, study, decode(details), address,
                agent, channel,
            )  # fmt: skip
            digest = sha256(b"\x00" + document).digest()  # audit.leaf.leaf_digest, inlined
            if digest.hex() != stored:
                return RangeResult(
                    start, bytes(out), seq, "the event's content does not match its leaf hash (altered)"
                )
            out += digest
            expected += 1
            if progress is not None and (expected - start) % CHUNK == 0:
                progress(expected - start)
    if expected < end:
        return RangeResult(start, bytes(out), expected, f"event {expected} is missing", truncated=True)
    return RangeResult(start, bytes(out))


@contextlib.contextmanager
def _leaf_rows(start: int, end: int) -> Iterator[tuple[Iterator[tuple], Callable[[Any], Any]]]:
    """The :data:`LEAF_FIELDS` values and the stored leaf hash of events ``start .. end - 1``, by seq,
    and the function that turns the ``details`` column read into its value.

    On PostgreSQL a server-side cursor in binary format streams plain tuples: integers and
    timestamps are decoded in C, with no per-row ORM work (a third of the CPU of the ORM's text
    rows). ``details`` comes as its JSON text, to be decoded with ``json.loads`` as
    JSONField.from_db_value decodes it (psycopg's own jsonb loader costs twice as much), and
    timestamps in the session's time zone, UTC as Django sets it: the values the ORM would give
    (the verify tests run on both paths). Elsewhere the ORM reads them in chunks.
    """
    if connection.vendor != "postgresql":
        rows = (
            AuditEvent.objects.filter(seq__gte=start, seq__lt=end)
            .order_by("seq")
            .values_list(*LEAF_FIELDS, "leaf_hash")
        )
        yield rows.iterator(chunk_size=CHUNK), _as_read
        return
    # A named cursor lives in a transaction (WITH HOLD, outside one, would copy the whole range).
    with transaction.atomic(), connection.wrap_database_errors:
        connection.ensure_connection()
        with connection.connection.cursor(name="audit_verify_range", binary=True) as cursor:
            cursor.execute(_RANGE_SQL, [start, end])
            yield _batches(cursor), _json_or_null


def _as_read(value: Any) -> Any:
    return value


def _json_or_null(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _batches(cursor: Any) -> Iterator[tuple]:
    """The rows of a server-side cursor, fetched :data:`CHUNK` at a time."""
    while batch := cursor.fetchmany(CHUNK):
        yield from batch


_META = AuditEvent._meta
_COLUMNS = ", ".join(
    f"{column}::text" if name == "details" else column
    for name in (*LEAF_FIELDS, "leaf_hash")
    for column in [_META.get_field(name).column]
)
# Built from the model's own metadata, never from input.
_RANGE_SQL = f"SELECT {_COLUMNS} FROM {_META.db_table} WHERE seq >= %s AND seq < %s ORDER BY seq"  # noqa: S608


def recompute_all(
    start: int,
    end: int,
    *,
    workers: int | None = None,
    parallel_min: int = PARALLEL_MIN,
    progress: Progress | None = None,
) -> RangeResult:
    """Recompute ``[start, end)`` with one process per core when the range is large enough.

    Worker processes cannot see the caller's uncommitted rows, so inside ``transaction.atomic()``
    (tests, mostly) the range is always done in this process.
    """
    workers = workers or os.cpu_count() or 1
    if workers < 2 or end - start < max(parallel_min, 2) or connection.in_atomic_block:
        return recompute(start, end, progress)
    step = -(-(end - start) // workers)
    bounds = [(lo, min(lo + step, end)) for lo in range(start, end, step)]
    # Spawned, not forked: forking a process that runs other threads (a web server, a broker client,
    # a test's helpers) can copy a lock another thread holds, and the child then waits on it forever.
    # A spawned worker sets Django up afresh and is told which database to read (in tests the test
    # database, whose name only this process knows).
    with ProcessPoolExecutor(
        len(bounds),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=range_workers.start,
        initargs=(connection.settings_dict["NAME"],),
    ) as pool:
        futures = {pool.submit(range_workers.recompute, bound): i for i, bound in enumerate(bounds)}
        parts: list[RangeResult | None] = [None] * len(bounds)
        done = 0
        for future in as_completed(futures):  # ranges finish in any order; they are joined in order
            part = parts[futures[future]] = future.result()
            done += len(part.leaves) // 32
            if progress is not None:
                progress(done)
    return _join([part for part in parts if part is not None])


def _join(parts: list[RangeResult]) -> RangeResult:
    """Concatenate ranges in order up to the first one that stopped early."""
    leaves = bytearray()
    for part in parts:
        leaves += part.leaves
        if part.failure_seq is not None:
            return dataclasses.replace(part, start=parts[0].start, leaves=bytes(leaves))
    return RangeResult(parts[0].start, bytes(leaves))
