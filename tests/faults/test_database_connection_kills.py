"""The database drops the application's connections under load: clean failures, no half-written rows.

Restarting the shared PostgreSQL server is not safe on a shared machine, so the outage is simulated
the way a failover looks to the application: ``pg_terminate_backend`` on every connection of the
stack's database, repeatedly, while REST and HL7 ingestion run from several client threads. Each
answer must be a success, or a clean refusal the sender can retry (REST 503, HL7 NAK with 503);
afterwards every refused message is resent until it succeeds, and the record must be whole: every
row has its audit event, the audit log verifies, and nothing exists twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from tests.adapters.conftest import build_oru
from tests.faults.conftest import Stack, make_stack

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

PAIRS = 30
HL7_MESSAGES = 30
KILL_SECONDS = 10
CLEAN_FAILURES = {503}


def _hl7(n: int) -> str:
    return build_oru(
        {
            "MSH": {10: f"CTRL{n}"},
            "PID": {3: f"MRNH{n:06d}^^^GENHOSP^MR"},
            "OBR": {3: f"H{n:06d}", 32: "alice"},
        }
    )


def _kill_connections(stack, stop: threading.Event, kills: list[int]) -> None:
    while not stop.is_set():
        killed = stack.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            [stack.database],
        )
        kills.append(len(killed))
        time.sleep(0.2)


@dataclass
class Outcome:
    """What the clients saw while connections were killed, and the stack to inspect afterwards."""

    stack: Stack
    kills: int
    unclean: list[str]
    retried_pairs: int
    retried_hl7: int


@pytest.fixture(scope="module")
def outcome(template_database, tmp_path_factory) -> Iterator[Outcome]:
    """Run the outage once for the module: traffic, kills, then the senders' retries."""
    with make_stack(template_database, tmp_path_factory.mktemp("kills")) as stack:
        yield _outage(stack)


def _post_hl7(stack: Stack, n: int) -> requests.Response:
    return requests.post(
        f"{stack.web_url}/api/v1/hl7",
        data=_hl7(n).encode(),
        headers={"Authorization": f"Token {stack.tokens['ris']}", "Content-Type": "x-application/hl7-v2+er7"},
        timeout=60,
    )


def _outage(stack: Stack) -> Outcome:
    stack.start_web(workers=2, threads=4)
    stack.start_worker()
    unclean: list[str] = []
    retry_pairs: set[int] = set()
    retry_hl7: set[int] = set()

    def pair(n: int) -> None:
        with requests.Session() as session:
            codes = stack.post_pair(n, session=session)
        if any(code not in {200, 201} | CLEAN_FAILURES for code in codes):
            unclean.append(f"REST pair {n}: {codes}")
        if codes != [201, 201, 201]:
            retry_pairs.add(n)

    def hl7(n: int) -> None:
        response = _post_hl7(stack, n)
        acked = response.status_code == 200 and "MSA|AA" in response.text
        nak = response.status_code in CLEAN_FAILURES and "MSA|A" in response.text
        if not (acked or nak):
            unclean.append(f"HL7 {n}: {response.status_code} {response.text[:120]!r}")
        if not acked:
            retry_hl7.add(n)

    stop = threading.Event()
    kills: list[int] = []
    killer = threading.Thread(target=_kill_connections, args=(stack, stop, kills), daemon=True)
    killer.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            jobs = [pool.submit(pair, n) for n in range(PAIRS)]
            jobs += [pool.submit(hl7, n) for n in range(HL7_MESSAGES)]
            for job in jobs:
                job.result()
        while time.monotonic() - started < KILL_SECONDS:
            time.sleep(0.2)
    finally:
        stop.set()
        killer.join(timeout=30)
    print(  # for the report
        f"connections killed: {sum(kills)}; refused pairs {len(retry_pairs)}, refused HL7 {len(retry_hl7)}; "
        f"unclean answers: {len(unclean)}"
    )

    # The outage is over: the senders retry what was refused, and it all goes in.
    for n in sorted(retry_pairs):
        codes = stack.post_pair(n)
        assert set(codes) <= {200, 201}, (n, codes)
    for n in sorted(retry_hl7):
        response = _post_hl7(stack, n)
        assert "MSA|AA" in response.text, response.text
    return Outcome(stack, sum(kills), unclean, len(retry_pairs), len(retry_hl7))


def test_connections_were_killed_while_requests_were_in_flight(outcome):
    assert outcome.kills > 0, "no connection was killed: the test proved nothing"
    assert outcome.retried_pairs + outcome.retried_hl7 > 0, "no request was interrupted"


def test_after_the_outage_every_record_is_whole_and_the_audit_log_verifies(outcome):
    stack = outcome.stack
    assert stack.scalar("SELECT count(*) FROM records_study") == PAIRS + HL7_MESSAGES
    assert stack.scalar("SELECT count(*) FROM records_aioutput") == PAIRS
    assert stack.scalar("SELECT count(*) FROM records_signedreport") == PAIRS + HL7_MESSAGES
    for table, action in [
        ("records_study", "study.create"),
        ("records_aioutput", "ai_output.create"),
        ("records_signedreport", "signed_report.%"),
    ]:
        orphans = stack.scalar(
            f"SELECT count(*) FROM {table} r WHERE NOT EXISTS (SELECT 1 FROM audit_auditevent e "
            "WHERE e.action LIKE %s AND e.object_id = r.id::text)",
            [action],
        )
        assert orphans == 0, f"{orphans} rows of {table} without a {action} event"
    assert "audit log intact" in stack.verify_audit()


def test_every_answer_during_the_outage_was_a_success_or_a_clean_503(outcome):
    assert not outcome.unclean, "\n".join(outcome.unclean)
