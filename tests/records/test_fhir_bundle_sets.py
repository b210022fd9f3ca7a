"""Transaction Bundles stored set by set (portal/records/ingest/fhir_sets.py): the same rows, answers and
audit events as entry by entry, in a handful of statements; duplicates, re-posts and concurrent Bundles."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from portal.records.ingest import fhir_sets
from portal.records.models import AIOutput, FhirPatientId, InboundMessage, Patient, SignedReport, Study
from tests.records.test_fhir_references_and_bundles import PATIENT, PRACTITIONER
from tests.records.test_ingest_query_budgets import _pair_entries

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _bundle(pairs: range) -> dict:
    entries = [e for n in pairs for e in _pair_entries(n)]
    for number, entry in enumerate(entries):
        if entry["resource"]["resourceType"] == "DiagnosticReport":
            entry["resource"]["id"] = f"dr-{number}"  # the sender's id: the entry's location
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _post(client, bundle: dict):
    return client.post("/api/v1/fhir", data=json.dumps(bundle), content_type=FHIR_JSON)


def _statuses(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [e["response"]["status"] for e in response.json()["entry"]]


def _answers(response) -> list[tuple[str, str]]:
    """Status and location of each entry, a Patient's server-assigned id replaced by its MRN's place."""
    ids: dict[str, str] = {}
    answers = []
    for entry in response.json()["entry"]:
        status, location = entry["response"]["status"], entry["response"]["location"]
        if location.startswith("Patient/"):
            location = ids.setdefault(location, f"Patient/#{len(ids)}")
        answers.append((status, location))
    return answers


def _entry_by_entry(monkeypatch) -> None:
    def not_plain(*args, **kwargs):
        raise fhir_sets.NotPlain("forced by the test")

    monkeypatch.setattr(fhir_sets, "store_transaction", not_plain)


def _state() -> tuple:
    """What a Bundle leaves behind, without ids: rows per table and audit actions."""
    return (
        Patient.objects.count(),
        FhirPatientId.objects.count(),
        Study.objects.count(),
        AIOutput.objects.count(),
        SignedReport.objects.count(),
        Counter(AuditEvent.objects.values_list("action", flat=True)),
    )


@pytest.mark.parametrize("repost", [False, True])
def test_set_by_set_and_entry_by_entry_store_and_answer_the_same(ris, monkeypatch, repost):
    bundle = _bundle(range(6))  # 3 patients, each named by two Patient entries
    answers = []
    states = []
    for path in ("sets", "entries"):
        if path == "entries":
            monkeypatch.undo()
            _entry_by_entry(monkeypatch)
        with CaptureQueriesContext(connection) as first:
            answers.append(_answers(_post(ris, bundle)))
        if repost:
            answers.append(_answers(_post(ris, bundle)))
        states.append(_state())
        if path == "sets":
            sets_statements = len(first.captured_queries)
            # Records are immutable, nothing to wipe: the second path gets the same Bundle under new keys.
            bundle = json.loads(json.dumps(bundle).replace("BUDGET", "SECOND").replace("MRNB", "MRNC"))
    assert answers[0] == answers[len(answers) // 2]  # the first answer of each path
    statuses = [status for status, _ in answers[0]]
    created, known = ["201 Created"] * 3, ["200 OK", "201 Created", "201 Created"]
    assert statuses == created * 3 + known * 3  # pairs 3..5 name patients 0..2 again
    assert answers[0][1] == ("201 Created", "dr-1") and answers[0][9] == ("200 OK", "Patient/#0")
    if repost:
        assert answers[1] == answers[3] == [("200 OK", location) for _, location in answers[0]]
    sets_state, both_state = states
    per_run = tuple(b - a for a, b in zip(sets_state[:5], both_state[:5], strict=True))
    assert per_run == sets_state[:5] == (3, 3, 6, 6, 6)
    first_time_only = Counter({"clinician.create": 1, "model_version.create": 1})  # the signer, the model
    assert both_state[5] - sets_state[5] == sets_state[5] - first_time_only  # the same audit events
    # Entry by entry about 8 per report; here about 18 whatever the size, plus the first sight of the
    # signer and the model (each created in a savepoint of its own).
    assert sets_statements <= 30


def test_a_bundles_studies_go_to_the_workers_in_one_comparison_message(
    ris, monkeypatch, django_capture_on_commit_callbacks
):
    from portal.core import enqueue

    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(enqueue.current_app, "send_task", lambda name, args: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        _statuses(_post(ris, _bundle(range(3))))
    studies = sorted(Study.objects.values_list("pk", flat=True))
    (message,) = sent
    assert message[0] == "portal.review.tasks.compare_studies" and sorted(message[1][0]) == studies


def test_a_report_twice_in_one_bundle_is_stored_once(ris):
    bundle = _bundle(range(2))
    bundle["entry"].append(json.loads(json.dumps(bundle["entry"][2])))  # the first final again

    statuses = _statuses(_post(ris, bundle))

    assert statuses == ["201 Created"] * 6 + ["200 OK"]
    assert (Study.objects.count(), SignedReport.objects.count(), AIOutput.objects.count()) == (2, 2, 2)


def test_a_bundle_reposted_with_one_new_report_stores_only_that_one(ris):
    _post(ris, _bundle(range(4)))
    events = AuditEvent.objects.count()

    statuses = _statuses(_post(ris, _bundle(range(5))))

    assert statuses == ["200 OK"] * 12 + ["200 OK", "201 Created", "201 Created"]  # patient 4 % 3 known
    assert (Study.objects.count(), SignedReport.objects.count()) == (5, 5)
    assert AuditEvent.objects.count() > events


def test_a_patient_inserted_concurrently_is_found_when_the_bundle_runs_again(ris, monkeypatch):
    """A concurrent Bundle commits a new patient after this one read: the INSERT fails, the whole
    transaction runs again and finds it; nothing is stored twice."""
    Patient.objects.create(mrn="MRNB0", family_name="Testperson", given_name="Ada")
    reads = []
    real = fhir_sets.stored_patients

    def stale_first(mrns):
        reads.append(mrns)
        return {} if len(reads) == 1 else real(mrns)  # the first read missed the other's commit

    monkeypatch.setattr(fhir_sets, "stored_patients", stale_first)

    statuses = _statuses(_post(ris, _bundle(range(1))))

    assert len(reads) == 2
    assert statuses == ["201 Created"] * 3  # the patient's FHIR id is new
    assert Patient.objects.filter(mrn="MRNB0").count() == 1
    assert InboundMessage.objects.get().outcome == "stored"


@pytest.mark.django_db(transaction=True)
def test_concurrent_bundles_sharing_patients_store_each_patient_once(client_for):
    ris = client_for("ris")
    token_headers = dict(ris._credentials)
    bundles = [_bundle(range(start, start + 6)) for start in (0, 6, 12, 18)]  # all share MRNB0..2
    answers: list = []
    errors: list = []
    barrier = threading.Barrier(len(bundles))

    def send(bundle: dict) -> None:
        from django.test import Client

        try:
            barrier.wait()
            client = Client(**token_headers)
            answers.append(_statuses(_post(client, bundle)))
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(b,)) for b in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors and len(answers) == 4
    assert Patient.objects.count() == 3 and FhirPatientId.objects.count() == 3
    assert (Study.objects.count(), AIOutput.objects.count(), SignedReport.objects.count()) == (24, 24, 24)
    # Each patient created once: its Patient entries (every third) are 201 once in all four answers.
    assert sum(a[0::3].count("201 Created") for a in answers) == 3


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([], id="empty"),
        pytest.param([e for n in range(4) for e in _pair_entries(n)[:1]], id="patients-only"),
        pytest.param(
            [
                {"resource": PRACTITIONER, "request": {"method": "PUT", "url": "Practitioner/p-23"}},
                {
                    "resource": {**PATIENT, "id": "pat-1"},
                    "request": {"method": "PUT", "url": "Patient/pat-1"},
                },
                *_pair_entries(7)[1:],
            ],
            id="put-practitioner-and-patient",
        ),
    ],
)
def test_other_shapes_answer_as_entry_by_entry(ris, monkeypatch, entries):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    for entry in entries:
        if entry["resource"]["resourceType"] == "DiagnosticReport":  # signed by the PUT practitioner
            entry["resource"].pop("resultsInterpreter", None)
            entry["resource"]["performer"] = [{"reference": "Practitioner/p-23"}]
            entry["resource"]["subject"] = {"reference": "Patient/pat-1"}

    sets = _post(ris, bundle)
    state = _state()
    _entry_by_entry(monkeypatch)
    again = _post(ris, bundle)

    assert sets.status_code == again.status_code == 200, sets.content
    assert [e["response"]["status"][:3] for e in again.json()["entry"]] == ["200"] * len(entries)
    assert _answers(again) == [("200 OK", location) for _, location in _answers(sets)]
    assert _state() == state  # the re-post entry by entry adds nothing: the same rows were stored
