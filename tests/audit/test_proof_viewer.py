"""The proof viewer: an event or a study proven level by level against a signed checkpoint, the
consistency between two checkpoints, and a downloaded proof that verify_package.py accepts, and
refuses once tampered with, also on a bare Python without ``cryptography``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test import Client

from audit import checkpoints, immutability, log
from audit.merkle import MerkleTree, leaf_hash
from audit.models import AuditEvent, Checkpoint
from audit.proof_viewer import inclusion_steps, sibling_ranges
from audit.verify_package import verify_proof
from tests.audit.conftest import append_events, integrate_now

pytestmark = pytest.mark.django_db
VERIFIER = Path(__file__).resolve().parents[2] / "audit" / "verify_package.py"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def study():
    """A study with an accession number and three audit events about it among others."""
    from portal.records.models import Patient, Study

    patient = Patient.objects.create(mrn="MRN-PV1")
    study = Study.objects.create(accession_number="ACC-PV-1", patient=patient)
    append_events(3)
    for i in range(3):
        with transaction.atomic():
            log.record(
                "study.viewed",
                actor=None,
                object_type="study",
                object_id=study.pk,
                study_id=study.pk,
                details={"i": i},
            )
    append_events(2)
    integrate_now()
    checkpoints.create_checkpoint()
    return study


def _download(client: Client, tmp_path: Path, query: str) -> Path:
    response = client.get(f"/audit/proofs/download?{query}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert "attachment" in response["Content-Disposition"]
    path = tmp_path / "proof.json"
    path.write_bytes(response.content)
    return path


def _public_pem(tmp_path: Path) -> Path:
    from audit.signing import public_key_pem

    path = tmp_path / "key.pem"
    path.write_text(public_key_pem(checkpoints.signing_key().public_key()))
    return path


@pytest.mark.parametrize(("size", "index"), [(1, 0), (2, 1), (5, 4), (7, 2), (8, 5), (13, 12), (33, 16)])
def test_the_drawn_path_is_the_rfc_path_and_ends_at_the_root(size, index):
    tree = MerkleTree.from_leaf_hashes(leaf_hash(bytes([i]) * 3) for i in range(size))
    proof = tree.inclusion_proof(index, size)

    steps = inclusion_steps(tree.leaf_hash(index), index, size, proof)

    assert len(steps) == len(proof) == len(sibling_ranges(index, size))
    assert (steps[-1].node if steps else tree.leaf_hash(index).hex()) == tree.root().hex()
    if steps:
        assert steps[-1].node_range == (0, size)
        assert all(
            a.node_range[1] - a.node_range[0] < b.node_range[1] - b.node_range[0]
            for a, b in zip(steps, steps[1:], strict=False)
        )


def test_an_event_is_drawn_level_by_level_to_the_signed_root(personas, study):
    seq = AuditEvent.objects.filter(study_id=study.pk).values_list("seq", flat=True).first()

    response = _client(personas["otto"]).get(f"/audit/proofs/?seq={seq}")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-testid="proof-event-{seq}"' in html
    assert "= signed root" in html and "Every path below reaches the signed root." in html
    assert html.count("<td>leaf</td>") == 1
    assert AuditEvent.objects.filter(action="audit.proof_viewed").exists()  # viewing evidence is audited


def test_a_study_shows_each_of_its_events(personas, study):
    seqs = list(AuditEvent.objects.filter(study_id=study.pk).values_list("seq", flat=True))

    html = _client(personas["lena"]).get("/audit/proofs/?accession=ACC-PV-1").content.decode()

    assert len(seqs) == 3
    for seq in seqs:
        assert f'data-testid="proof-event-{seq}"' in html
    viewed = AuditEvent.objects.get(action="audit.proof_viewed")
    assert viewed.study_id == study.pk and viewed.actor_username == "lena"


def test_the_consistency_between_two_checkpoints_is_shown(personas, study):
    earlier_size = Checkpoint.objects.get().tree_size
    append_events(5)
    integrate_now()
    later = checkpoints.create_checkpoint()

    html = (
        _client(personas["otto"])
        .get(f"/audit/proofs/?since={earlier_size}&checkpoint={later.tree_size}")
        .content.decode()
    )

    assert 'data-testid="proof-consistency"' in html
    assert "the later tree extends the earlier one" in html


def test_a_downloaded_proof_verifies_and_a_tampered_one_does_not(personas, study, tmp_path):
    otto = _client(personas["otto"])
    path = _download(otto, tmp_path, "accession=ACC-PV-1")
    key = _public_pem(tmp_path).read_bytes()

    report = verify_proof(path, key)
    assert report.status == "VALID", report.reason
    assert report.event_count == 3
    assert AuditEvent.objects.filter(action="audit.proof_downloaded", study_id=study.pk).exists()

    document = json.loads(path.read_text())
    document["events"][1]["event"]["action"] = "study.deleted"
    path.write_text(json.dumps(document))
    report = verify_proof(path, key)
    assert report.status == "INVALID"
    assert "leaf_hash does not match the event" in report.reason


@pytest.mark.parametrize(
    ("tamper", "fragment"),
    [
        (
            lambda d: (
                d["events"][0]["inclusion_proof"].reverse()
                or d["events"][0]["inclusion_proof"].append("00" * 32)
            ),
            "inclusion proof does not verify",
        ),
        (lambda d: d["checkpoints"][-1].update(root_hash="ab" * 32), "signature does not verify"),
        (lambda d: d["events"][0].update(seq=d["events"][0]["seq"] + 1), "inclusion proof does not verify"),
        (lambda d: d.update(format="something-else"), "'format' must be"),
        (lambda d: d.update(events=[]), "non-empty list"),
    ],
)
def test_other_tampering_is_invalid(personas, study, tmp_path, tamper, fragment):
    path = _download(_client(personas["otto"]), tmp_path, "accession=ACC-PV-1")
    document = json.loads(path.read_text())
    tamper(document)
    path.write_text(json.dumps(document))

    report = verify_proof(path, _public_pem(tmp_path).read_bytes())

    assert report.status == "INVALID" and fragment in report.reason


def test_a_proof_from_another_key_is_invalid_when_the_key_is_pinned(personas, study, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.signing import public_key_pem

    path = _download(_client(personas["otto"]), tmp_path, "accession=ACC-PV-1")
    other = tmp_path / "other.pem"
    other.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key()))

    assert verify_proof(path, other.read_bytes()).status == "INVALID"


def test_a_consistency_proof_in_the_download_is_checked(personas, study, tmp_path):
    first_size = Checkpoint.objects.get().tree_size
    append_events(4)
    integrate_now()
    later = checkpoints.create_checkpoint()
    seq = AuditEvent.objects.filter(study_id=study.pk).values_list("seq", flat=True).first()
    path = _download(
        _client(personas["otto"]), tmp_path, f"seq={seq}&checkpoint={later.tree_size}&since={first_size}"
    )
    key = _public_pem(tmp_path).read_bytes()
    document = json.loads(path.read_text())
    assert len(document["checkpoints"]) == 2 and len(document["consistency"]) == 1
    assert verify_proof(path, key).status == "VALID"

    document["consistency"][0]["proof"][0] = "cd" * 32
    path.write_text(json.dumps(document))
    report = verify_proof(path, key)
    assert report.status == "INVALID" and "consistency proof does not verify" in report.reason


def test_the_command_line_checks_a_proof_on_a_bare_python(personas, study, tmp_path):
    """The downloaded proof, checked by a lone copy of the verifier with ``cryptography`` blocked."""
    path = _download(_client(personas["otto"]), tmp_path, "accession=ACC-PV-1")
    key = _public_pem(tmp_path)
    alone = tmp_path / "alone"
    alone.mkdir()
    script = shutil.copy(VERIFIER, alone / "verify_package.py")
    guard = (
        "import runpy, sys; sys.modules['cryptography'] = None; sys.modules['audit'] = None; "
        "sys.modules['django'] = None; "
        f"sys.argv = [{str(script)!r}, *sys.argv[1:]]; runpy.run_path({str(script)!r}, run_name='__main__')"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-I", "-c", guard, *args], cwd=alone, capture_output=True, text=True, timeout=120
        )

    result = run(str(path), "--public-key", str(key))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "VERDICT: VALID"
    assert "pure Python (RFC 8032)" in result.stdout

    document = json.loads(path.read_text())
    document["events"][0]["event"]["actor"]["username"] = "mallory"
    path.write_text(json.dumps(document))
    result = run(str(path), "--public-key", str(key))
    assert result.returncode == 1 and result.stdout.splitlines()[-1].startswith(
        "VERDICT: INVALID: audit events"
    )

    result = run(str(tmp_path / "absent.json"))
    assert result.returncode == 3 and "CANNOT VERIFY" in result.stdout


def test_a_rewritten_event_is_drawn_as_not_reaching_the_root(personas, study):
    seq = AuditEvent.objects.filter(study_id=study.pk).values_list("seq", flat=True).first()
    with immutability.suspended(connection, ["audit_auditevent"]), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET action = 'forged' WHERE seq = %s", [seq])

    html = _client(personas["otto"]).get(f"/audit/proofs/?seq={seq}").content.decode()

    assert "content no longer matches its leaf" in html
    assert "The evidence does not verify" in html


def test_an_event_newer_than_the_checkpoint_is_pending(personas, study):
    (seq,) = append_events(1)

    html = _client(personas["otto"]).get(f"/audit/proofs/?seq={seq}").content.decode()

    assert "recorded after this checkpoint" in html
    response = _client(personas["otto"]).get(f"/audit/proofs/download?seq={seq}")
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("query", "status", "fragment"),
    [
        ("seq=abc", 400, "seq: a whole number"),
        ("seq=-1", 400, "seq: a whole number"),
        ("seq=99999999999999999999", 400, "seq: a whole number"),
        ("seq=1&accession=ACC-PV-1", 400, "not both"),
        ("accession=" + "A" * 65, 400, "accession: at most 64"),
        ("accession=%00x", 400, "accession"),
        ("seq=999999", 404, "no audit event 999999"),
        ("accession=%27%20OR%201%3D1--", 404, "no study with this accession number"),
        ("accession=<script>alert(1)</script>", 404, "no study"),
        ("seq=1&checkpoint=777777", 404, "no signed checkpoint of tree size 777777"),
        ("seq=1&since=8", 400, "must be smaller"),  # the fixture's checkpoint covers 8 events
    ],
)
def test_bad_input_is_a_clear_4xx(personas, study, query, status, fragment):
    before = AuditEvent.objects.filter(action__startswith="audit.proof").count()

    page = _client(personas["otto"]).get(f"/audit/proofs/?{query}")
    download = _client(personas["otto"]).get(f"/audit/proofs/download?{query}")

    assert page.status_code == status and fragment in page.content.decode()
    assert download.status_code == status and fragment in download.content.decode()
    assert "<script>alert(1)</script>" not in page.content.decode()
    assert AuditEvent.objects.filter(action__startswith="audit.proof").count() == before


def test_a_download_needs_a_subject(personas, study):
    response = _client(personas["otto"]).get("/audit/proofs/download")

    assert response.status_code == 400


@pytest.mark.parametrize("persona", ["alice", "carol", "ris", "eve"])
@pytest.mark.parametrize("url", ["/audit/proofs/?seq=1", "/audit/proofs/download?seq=1"])
def test_other_roles_are_refused(personas, study, persona, url):
    response = _client(personas[persona]).get(url)

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action__startswith="audit.proof").exists()


def test_signed_out_is_sent_to_sign_in(study):
    response = Client().get("/audit/proofs/?seq=1")

    assert response.status_code == 302 and "/accounts/login" in response["Location"]
