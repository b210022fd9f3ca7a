"""Fixtures for the audit log tests: a throwaway signing key and a helper that appends events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def signing_key_file(settings, tmp_path: Path) -> Iterator[Path]:
    """Each test signs checkpoints with a fresh Ed25519 key created in its own temporary folder.

    The key is cached per (path, create) by ``audit.checkpoints._signing_key``; clearing the cache
    before and after keeps one test's key from leaking into the next.
    """
    from audit import checkpoints

    path = tmp_path / "keys" / "audit-signing-key.pem"
    settings.AUDIT_SIGNING_KEY_FILE = path
    settings.AUDIT_SIGNING_KEY_CREATE = True
    checkpoints._signing_key.cache_clear()
    yield path
    checkpoints._signing_key.cache_clear()


def append_events(count: int, *, prefix: str = "test.event") -> list[int]:
    """Append ``count`` events, each in its own transaction (as separate requests would); their seqs."""
    from django.db import transaction

    from audit import log

    seqs = []
    for i in range(count):
        with transaction.atomic():
            event = log.record(
                f"{prefix}.{i % 3}",
                actor=None,
                object_type="study",
                object_id=i,
                patient_id=1000 + i,
                details={"n": i, "note": "résumé ✓", "ratio": i / 4},
            )
        seqs.append(event.seq)
    return seqs


@pytest.fixture
def append():
    """The :func:`append_events` helper, as a fixture for tests that prefer injection."""
    return append_events


def integrate_now() -> int:
    """Run the integrator until it has caught up (waiting up to 2 s for holes to be proven
    abandoned on PostgreSQL); the tree's size afterwards.
    """
    from audit import integrator

    return integrator.integrate_all(hole_wait_s=2.0).size
