"""The audit log's signed checkpoints and Merkle proofs over the API, checked by an outside verifier."""

from __future__ import annotations

import pytest

from audit import checkpoints
from audit.merkle import verify_consistency, verify_inclusion
from audit.models import AuditEvent
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

CHECKPOINTS = "/api/v1/audit/checkpoints"
INCLUSION = "/api/v1/audit/proofs/inclusion"
CONSISTENCY = "/api/v1/audit/proofs/consistency"
ALLOWED = {"otto", "lena", "adam"}


@pytest.fixture
def log(append) -> int:
    """A log of 13 events with checkpoints at 5 and 13; its size."""
    append(5)
    checkpoints.create_checkpoint()
    append(8)
    checkpoints.create_checkpoint()
    return AuditEvent.objects.count()


@pytest.fixture
def everyone(personas) -> list[str | None]:
    """Every persona, adam the admin, and None for an anonymous caller."""
    personas["adam"] = make_user("adam", "admin")  # client_for looks users up in this dict
    return [*personas, None]


def test_checkpoints_are_listed_newest_first(client_for, personas, log):
    response = client_for("otto").get(CHECKPOINTS)

    assert response.status_code == 200
    rows = response.data["results"]
    assert [row["tree_size"] for row in rows] == [13, 5]
    assert set(rows[0]) == {"tree_size", "root_hash", "timestamp_ms", "signature", "key_fingerprint"}
    assert bytes.fromhex(rows[0]["root_hash"]) == checkpoints.root_at(13)


def test_every_inclusion_proof_verifies_against_the_root(client_for, personas, log):
    otto = client_for("otto")
    for tree_size in (1, 5, 13):
        root = checkpoints.root_at(tree_size)
        for seq in range(tree_size):
            response = otto.get(INCLUSION, {"seq": seq, "tree_size": tree_size})
            assert response.status_code == 200, response.data
            body = response.data
            assert (body["seq"], body["tree_size"]) == (seq, tree_size)
            assert body["leaf_hash"] == AuditEvent.objects.get(seq=seq).leaf_hash
            proof = [bytes.fromhex(p) for p in body["proof"]]
            assert verify_inclusion(bytes.fromhex(body["leaf_hash"]), seq, tree_size, proof, root)
            assert not verify_inclusion(bytes.fromhex(body["leaf_hash"]), seq, tree_size, proof, b"\0" * 32)


def test_every_consistency_proof_verifies_between_the_roots(client_for, personas, log):
    otto = client_for("otto")
    for new_size in range(1, log + 1):
        for old_size in range(1, new_size + 1):
            response = otto.get(CONSISTENCY, {"old_size": old_size, "new_size": new_size})
            assert response.status_code == 200, response.data
            proof = [bytes.fromhex(p) for p in response.data["proof"]]
            old_root, new_root = checkpoints.root_at(old_size), checkpoints.root_at(new_size)
            assert verify_consistency(old_size, new_size, old_root, new_root, proof), (old_size, new_size)


def test_a_consistency_proof_links_two_signed_checkpoints(client_for, personas, log):
    rows = client_for("lena").get(CHECKPOINTS).data["results"]
    new, old = rows
    response = client_for("lena").get(
        CONSISTENCY, {"old_size": old["tree_size"], "new_size": new["tree_size"]}
    )
    proof = [bytes.fromhex(p) for p in response.data["proof"]]
    assert verify_consistency(
        old["tree_size"],
        new["tree_size"],
        bytes.fromhex(old["root_hash"]),
        bytes.fromhex(new["root_hash"]),
        proof,
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "seq"),
        ({"seq": 0}, "tree_size"),
        ({"seq": "x", "tree_size": 3}, "seq"),
        ({"seq": -1, "tree_size": 3}, "seq"),
        ({"seq": "1.5", "tree_size": 3}, "seq"),
        ({"seq": "٣", "tree_size": 5}, "seq"),  # Arabic-Indic digit: isdigit() but not ASCII
        ({"seq": 0, "tree_size": 0}, "tree_size"),
        ({"seq": 0, "tree_size": 14}, "tree_size"),
        ({"seq": 5, "tree_size": 5}, "seq"),
        ({"seq": 0, "tree_size": 10**30}, "tree_size"),
    ],
)
def test_bad_inclusion_requests_are_400(client_for, personas, log, params, field):
    response = client_for("otto").get(INCLUSION, params)
    assert response.status_code == 400
    assert field in response.data


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "old_size"),
        ({"old_size": 1}, "new_size"),
        ({"old_size": "", "new_size": 3}, "old_size"),
        ({"old_size": 0, "new_size": 3}, "old_size"),
        ({"old_size": 4, "new_size": 3}, "old_size"),
        ({"old_size": 1, "new_size": 14}, "new_size"),
        ({"old_size": 1, "new_size": 0}, "new_size"),
    ],
)
def test_bad_consistency_requests_are_400(client_for, personas, log, params, field):
    response = client_for("otto").get(CONSISTENCY, params)
    assert response.status_code == 400
    assert field in response.data


def test_an_empty_log_has_no_proofs(client_for, personas):
    assert client_for("otto").get(INCLUSION, {"seq": 0, "tree_size": 1}).status_code == 400
    assert client_for("otto").get(CONSISTENCY, {"old_size": 1, "new_size": 1}).status_code == 400
    assert client_for("otto").get(CHECKPOINTS).data["results"] == []


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (CHECKPOINTS, {}),
        (INCLUSION, {"seq": 2, "tree_size": 5}),
        (CONSISTENCY, {"old_size": 5, "new_size": 13}),
    ],
)
def test_role_matrix(client_for, everyone, log, url, params):
    for name in everyone:
        expected = 401 if name is None else (200 if name in ALLOWED else 403)
        assert client_for(name).get(url, params).status_code == expected, name


def test_an_event_not_yet_integrated_is_202_with_retry_after_then_200(client_for, personas, log, append):
    append(2)  # events 13 and 14: recorded, not yet in the tree
    from audit import integrator

    integrator.integrate(max_batch=1)  # the integrator has run recently, and is one event behind

    response = client_for("otto").get(INCLUSION, {"seq": 14, "tree_size": 15})

    assert response.status_code == 202
    assert response["Retry-After"] == "11"
    assert response.data["status"] == "pending"
    assert "not yet integrated" in response.data["message"]
    assert response.data["proof"] == []
    integrator.integrate_all()
    response = client_for("otto").get(INCLUSION, {"seq": 14, "tree_size": 15})
    assert response.status_code == 200
    assert len(response.data["proof"]) >= 1
