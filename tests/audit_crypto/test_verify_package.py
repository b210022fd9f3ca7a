"""audit/verify_package.py: accepts an honest package; names the first problem in every tampered one."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import random
import shutil
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle
from audit import verify_package as vp
from audit.merkle import proofs as merkle_proofs
from audit.signing import public_key_pem, sign_tree_head

Writer = Callable[..., Path]
VERIFIER = Path(vp.__file__)


def verify(path: Path, key: Ed25519PrivateKey | None = None, **kwargs: object) -> vp.Report:
    expected = public_key_pem(key) if key is not None else None
    return vp.verify_package(path, expected, **kwargs)  # type: ignore[arg-type]


def assert_invalid(report: vp.Report, check: str, fragment: str) -> None:
    assert not report.valid, report.checks
    assert report.reason is not None
    assert report.reason.startswith(f"{check}: "), report.reason
    assert fragment in report.reason, report.reason
    assert report.verdict == f"VERDICT: INVALID: {report.reason}"


def entries_of(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


# ------------------------------------------------------------------------------------------------
# The honest package
# ------------------------------------------------------------------------------------------------


def test_valid_package(parts, zip_writer: Writer, signing_key) -> None:
    path = zip_writer(parts.seal())
    report = verify(path, signing_key)
    assert report.valid, report.reason
    assert report.verdict == "VERDICT: VALID"
    assert [c.name for c in report.checks] == [
        "zip structure",
        "manifest",
        "public key",
        "manifest signature",
        "file inventory",
        "file digests",
        "checkpoints",
        "consistency proofs",
        "audit events",
    ]
    assert report.event_count == 14 and report.checkpoint_count == 3
    assert report.package_id == "pkg-0001"
    assert report.notes == []  # the key was pinned


def test_unpinned_key_is_valid_with_a_note(parts, zip_writer: Writer) -> None:
    report = verify(zip_writer(parts.seal()))
    assert report.valid
    assert any("--public-key" in note for note in report.notes)
    assert "not pinned" in report.checks[2].detail


@pytest.mark.parametrize(
    ("n_events", "sizes", "exported"),
    [
        (1, (1,), [0]),
        (8, (8,), list(range(8))),
        (70, (1, 2, 3, 33, 64, 70), [0, 1, 2, 32, 63, 69]),
        (5, (), []),  # nothing checkpointed, nothing exported
    ],
)
def test_valid_shapes(builder, signing_key, zip_writer: Writer, n_events, sizes, exported) -> None:
    parts = builder(signing_key, n_events=n_events, checkpoint_sizes=sizes, exported=exported)
    report = verify(zip_writer(parts.seal()), signing_key)
    assert report.valid, report.reason
    assert report.event_count == len(exported)


def test_directory_entries_are_tolerated(parts, zip_writer: Writer, signing_key) -> None:
    entries = [("audit/", b""), ("records/", b""), *parts.seal().items()]
    assert verify(zip_writer(entries), signing_key).valid


# ------------------------------------------------------------------------------------------------
# Tampering after export (no key): caught by the signature and the digests
# ------------------------------------------------------------------------------------------------


def test_altered_byte_in_a_file(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    data = bytearray(entries["records/report-1000.txt"])
    data[10] ^= 0x01
    entries["records/report-1000.txt"] = bytes(data)
    assert_invalid(
        verify(zip_writer(entries), signing_key), "file digests", "records/report-1000.txt: SHA-256"
    )


def test_altered_byte_in_events(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    entries["audit/events.jsonl"] = entries["audit/events.jsonl"].replace(b"user-0", b"user-2", 1)
    report = verify(zip_writer(entries), signing_key)
    assert_invalid(report, "file digests", "audit/events.jsonl: SHA-256")
    # Later checks still run and say what else is wrong.
    assert any(c.name == "audit events" and not c.ok and "leaf_hash" in c.detail for c in report.checks)


def test_truncated_file_changes_size(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    entries["records/report-1000.txt"] = entries["records/report-1000.txt"][:-1]
    assert_invalid(verify(zip_writer(entries), signing_key), "file digests", "size is")


def test_dropped_file(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    del entries["records/report-1000.txt"]
    assert_invalid(
        verify(zip_writer(entries), signing_key), "file inventory", "records/report-1000.txt is missing"
    )


def test_added_file(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    entries["records/planted.txt"] = b"evidence that was never exported"
    assert_invalid(
        verify(zip_writer(entries), signing_key), "file inventory", "unlisted file records/planted.txt"
    )


def test_reordered_event_lines(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    lines = entries["audit/events.jsonl"].splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    entries["audit/events.jsonl"] = b"".join(lines)
    assert_invalid(verify(zip_writer(entries), signing_key), "file digests", "audit/events.jsonl")


def test_swapped_signature(parts, builder, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    other = builder(signing_key, n_events=12, checkpoint_sizes=(12,)).seal()
    entries["manifest.sig"] = other["manifest.sig"]  # valid signature, by the right key, of another manifest
    assert_invalid(verify(zip_writer(entries), signing_key), "manifest signature", "does not verify")


def test_edited_manifest_without_resigning(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    entries["manifest.json"] = entries["manifest.json"].replace(b"pkg-0001", b"pkg-0002")
    assert_invalid(verify(zip_writer(entries), signing_key), "manifest signature", "does not verify")


@pytest.mark.parametrize(
    ("sig", "fragment"),
    [
        (b"not base64!!", "not valid base64"),
        (base64.b64encode(b"x" * 63), "63 bytes"),
        (b"\xff\xfe", "base64"),
    ],
)
def test_malformed_signature_file(parts, zip_writer: Writer, signing_key, sig: bytes, fragment: str) -> None:
    entries = parts.seal()
    entries["manifest.sig"] = sig
    assert_invalid(verify(zip_writer(entries), signing_key), "manifest signature", fragment)


def test_missing_signature_file(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    del entries["manifest.sig"]
    assert_invalid(verify(zip_writer(entries), signing_key), "manifest signature", "manifest.sig is missing")


# ------------------------------------------------------------------------------------------------
# Forgeries by someone who can sign (a rogue exporter, or an attacker with their own key)
# ------------------------------------------------------------------------------------------------


def test_forged_checkpoint_root(parts, zip_writer: Writer, signing_key) -> None:
    """A checkpoint rewritten to match altered history: the tree head signature no longer verifies."""
    parts.checkpoints[1]["root_hash"] = hashlib.sha256(b"rewritten history").hexdigest()
    assert_invalid(
        verify(zip_writer(parts.seal()), signing_key), "checkpoints", "checkpoint 1 (tree size 32)"
    )


def test_forged_package_with_attackers_key(parts, zip_writer: Writer, signing_key, other_key) -> None:
    """Everything re-signed with another key is self-consistent; only pinning the real key exposes it."""
    forged = vp_rebuild_with_key(parts, other_key)
    path = zip_writer(forged)
    assert verify(path).valid  # self-consistent: this is why the CLI recommends --public-key
    assert_invalid(verify(path, signing_key), "public key", "expected key")


def vp_rebuild_with_key(parts, key: Ed25519PrivateKey) -> dict[str, bytes]:
    for cp in parts.checkpoints:
        root = bytes.fromhex(cp["root_hash"])
        cp["signature"] = base64.b64encode(
            sign_tree_head(key, cp["tree_size"], root, cp["timestamp_ms"])
        ).decode()
    parts.key = key
    return parts.seal()


def test_fingerprint_mismatch(parts, zip_writer: Writer, signing_key) -> None:
    manifest = parts.manifest()
    manifest["public_key_fingerprint"] = "0" * 64
    assert_invalid(verify(zip_writer(parts.seal(manifest)), signing_key), "public key", "fingerprint")


def test_reordered_events_resigned(parts, zip_writer: Writer, signing_key) -> None:
    lines = parts.files["audit/events.jsonl"].splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    parts.files["audit/events.jsonl"] = b"".join(lines)
    assert_invalid(
        verify(zip_writer(parts.seal()), signing_key), "audit events", "line 3: seq 3 does not follow"
    )


def test_duplicated_event_line(parts, zip_writer: Writer, signing_key) -> None:
    lines = parts.files["audit/events.jsonl"].splitlines(keepends=True)
    parts.files["audit/events.jsonl"] = b"".join([*lines[:3], lines[2], *lines[3:]])
    assert_invalid(verify(zip_writer(parts.seal()), signing_key), "audit events", "must ascend")


def _edit_event_line(parts, index: int, edit: Callable[[dict], None]) -> None:
    lines = parts.files["audit/events.jsonl"].decode().splitlines()
    record = json.loads(lines[index])
    edit(record)
    lines[index] = json.dumps(record, ensure_ascii=False)
    parts.files["audit/events.jsonl"] = ("\n".join(lines) + "\n").encode()


def test_altered_event_content(parts, zip_writer: Writer, signing_key) -> None:
    _edit_event_line(parts, 2, lambda r: r["event"]["actor"].update(id="someone-else"))
    assert_invalid(
        verify(zip_writer(parts.seal()), signing_key), "audit events", "seq 6): leaf_hash does not match"
    )


def test_altered_event_with_recomputed_leaf_hash(parts, zip_writer: Writer, signing_key) -> None:
    def edit(record: dict) -> None:
        record["event"]["action"] = "phi.export"
        record["leaf_hash"] = merkle.leaf_hash(vp.canonical_json(record["event"])).hex()

    _edit_event_line(parts, 2, edit)
    assert_invalid(
        verify(zip_writer(parts.seal()), signing_key), "audit events", "inclusion proof does not verify"
    )


def test_event_moved_to_another_seq(parts, zip_writer: Writer, signing_key) -> None:
    _edit_event_line(parts, 0, lambda r: r.update(seq=1))
    assert_invalid(
        verify(zip_writer(parts.seal()), signing_key), "audit events", "inclusion proof does not verify"
    )


def test_event_with_unknown_checkpoint(parts, zip_writer: Writer, signing_key) -> None:
    _edit_event_line(parts, 0, lambda r: r.update(checkpoint_tree_size=14))
    assert_invalid(
        verify(zip_writer(parts.seal()), signing_key), "audit events", "no checkpoint with tree size 14"
    )


def test_event_outside_its_checkpoint(parts, zip_writer: Writer, signing_key) -> None:
    _edit_event_line(parts, 13, lambda r: r.update(checkpoint_tree_size=13))
    assert_invalid(verify(zip_writer(parts.seal()), signing_key), "audit events", "not inside checkpoint")


def test_tampered_consistency_proof(parts, zip_writer: Writer, signing_key) -> None:
    proofs = json.loads(parts.files["audit/consistency.json"])
    proofs[1]["proof"][0] = hashlib.sha256(b"x").hexdigest()
    parts.files["audit/consistency.json"] = json.dumps(proofs).encode()
    assert_invalid(verify(zip_writer(parts.seal()), signing_key), "consistency proofs", "32 -> 40")


def test_missing_consistency_proof(parts, zip_writer: Writer, signing_key) -> None:
    proofs = json.loads(parts.files["audit/consistency.json"])
    parts.files["audit/consistency.json"] = json.dumps(proofs[:1]).encode()
    assert_invalid(verify(zip_writer(parts.seal()), signing_key), "consistency proofs", "1 proofs for 2")


def test_forked_log_cannot_prove_consistency(builder, event_factory, signing_key, zip_writer: Writer) -> None:
    """History rewritten after checkpoint 13 was published: both heads are signed, but they do not chain."""
    honest = builder(signing_key)
    forked = builder(signing_key)
    # Rebuild the log with event 5 rewritten; keep the honest (already published) checkpoint at 13.
    events = [event_factory(i) for i in range(40)]
    events[5]["action"] = "history.rewritten"
    tree = merkle.MerkleTree.from_leaf_hashes(merkle.leaf_hash(vp.canonical_json(e)) for e in events)
    for cp in forked.checkpoints[1:]:
        root = tree.root(cp["tree_size"])
        cp["root_hash"] = root.hex()
        cp["signature"] = base64.b64encode(
            sign_tree_head(signing_key, cp["tree_size"], root, cp["timestamp_ms"])
        ).decode()
    forked.checkpoints[0] = honest.checkpoints[0]
    forked.files["audit/events.jsonl"] = b""
    forked.files["audit/consistency.json"] = json.dumps(
        [
            {"old_size": 13, "new_size": 32, "proof": [h.hex() for h in tree.consistency_proof(13, 32)]},
            {"old_size": 32, "new_size": 40, "proof": [h.hex() for h in tree.consistency_proof(32, 40)]},
        ]
    ).encode()
    assert_invalid(verify(zip_writer(forked.seal()), signing_key), "consistency proofs", "13 -> 32")


def test_checkpoints_out_of_order(builder, signing_key, zip_writer: Writer) -> None:
    parts = builder(signing_key, checkpoint_sizes=(13, 32, 40), exported=[])
    parts.checkpoints[0], parts.checkpoints[1] = parts.checkpoints[1], parts.checkpoints[0]
    assert_invalid(verify(zip_writer(parts.seal()), signing_key), "checkpoints", "strictly increase")


def test_checkpoint_timestamps_go_backwards(builder, signing_key, zip_writer: Writer) -> None:
    parts = builder(signing_key, checkpoint_sizes=(13, 32), exported=[])
    cp = parts.checkpoints[1]
    cp["timestamp_ms"] = parts.checkpoints[0]["timestamp_ms"] - 1
    root = bytes.fromhex(cp["root_hash"])
    cp["signature"] = base64.b64encode(sign_tree_head(signing_key, 32, root, cp["timestamp_ms"])).decode()
    assert_invalid(verify(zip_writer(parts.seal()), signing_key), "checkpoints", "timestamp")


# ------------------------------------------------------------------------------------------------
# Hostile or broken archives: a clear reason, never a traceback
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "/etc/passwd", "audit/../../x", "C:/windows/x", "a\\b.txt", "a//b", "./a", "bad\x01name"],
)
def test_unsafe_entry_names(parts, zip_writer: Writer, signing_key, name: str) -> None:
    entries = [*parts.seal().items(), (name, b"x")]
    assert_invalid(verify(zip_writer(entries), signing_key), "zip structure", "unsafe entry name")


def test_duplicate_entry_names(parts, zip_writer: Writer, signing_key) -> None:
    entries = [*parts.seal().items(), ("records/report-1000.txt", b"second copy")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we create on purpose
        path = zip_writer(entries)
    assert_invalid(verify(path, signing_key), "zip structure", "duplicate entry")


def test_symlink_entry(parts, zip_writer: Writer, signing_key, tmp_path: Path) -> None:
    path = zip_writer(parts.seal())
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("records/link")
        info.external_attr = (0o120777 << 16) | 0
        zf.writestr(info, "/etc/passwd")
    assert_invalid(verify(path, signing_key), "zip structure", "symbolic link")


def test_zip_bomb_is_refused_by_size_caps(parts, zip_writer: Writer, signing_key) -> None:
    entries = parts.seal()
    bomb = b"\0" * (8 * 1024 * 1024)  # deflates to about 8 KB
    entries["records/bomb.bin"] = bomb
    path = zip_writer(entries)
    assert path.stat().st_size < 100_000
    limits = vp.Limits(max_member_bytes=1024 * 1024)
    assert_invalid(verify(path, signing_key, limits=limits), "zip structure", "records/bomb.bin")
    limits = vp.Limits(max_total_bytes=4 * 1024 * 1024)
    assert_invalid(verify(path, signing_key, limits=limits), "zip structure", "expand to more than")
    limits = vp.Limits(max_members=3)
    assert_invalid(verify(path, signing_key, limits=limits), "zip structure", "entries (limit 3)")


def test_overlong_event_line(parts, zip_writer: Writer, signing_key) -> None:
    report = verify(zip_writer(parts.seal()), signing_key, limits=vp.Limits(max_line_bytes=100))
    assert_invalid(report, "audit events", "line 1 is longer than 100 bytes")


def test_not_a_zip(tmp_path: Path, signing_key) -> None:
    path = tmp_path / "package.zip"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    assert_invalid(verify(path, signing_key), "zip structure", "cannot open")
    missing = verify(tmp_path / "absent.zip", signing_key)
    assert (missing.status, missing.valid) == ("CANNOT VERIFY", False)
    assert missing.verdict.startswith("VERDICT: CANNOT VERIFY: cannot read the package: ")


@pytest.mark.parametrize(
    ("manifest_bytes", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[]", "must be a JSON object"),
        (b'{"package_id": "a", "package_id": "b"}', "duplicate key 'package_id'"),
        (b'{"x": NaN}', "NaN is not valid JSON"),
        (b'{"x": 1e999}', "out of range"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"{}", "has no 'package_id'"),
    ],
)
def test_malformed_manifest(
    parts, zip_writer: Writer, signing_key, manifest_bytes: bytes, fragment: str
) -> None:
    entries = parts.seal()
    entries["manifest.json"] = manifest_bytes
    assert_invalid(verify(zip_writer(entries), signing_key), "manifest", fragment)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: m.update(files="nope"), "'files' must be a list"),
        (lambda m: m["files"].append(dict(m["files"][0])), "listed twice"),
        (lambda m: m["files"][0].update(path="../x"), "unsafe path"),
        (lambda m: m["files"][0].update(size=-1), "'size' must be an integer"),
        (lambda m: m["files"][0].update(sha256="AB" * 32), "64 lowercase hex"),
        (lambda m: m["checkpoints"][0].update(tree_size=0), "'tree_size' must be an integer >= 1"),
        (lambda m: m["checkpoints"][0].update(tree_size=True), "'tree_size' must be an integer"),
        (lambda m: m["checkpoints"][0].update(signature="@@"), "not valid base64"),
        (lambda m: m["checkpoints"][0].pop("root_hash"), "has no 'root_hash'"),
        (lambda m: m.update(public_key_pem=""), "'public_key_pem' must be a non-empty string"),
    ],
)
def test_manifest_schema(parts, zip_writer: Writer, signing_key, edit, fragment: str) -> None:
    manifest = parts.manifest()
    edit(manifest)
    assert_invalid(verify(zip_writer(parts.seal(manifest)), signing_key), "manifest", fragment)


def test_bad_public_key_in_manifest(parts, zip_writer: Writer, signing_key) -> None:
    manifest = parts.manifest()
    manifest["public_key_pem"] = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    assert_invalid(verify(zip_writer(parts.seal(manifest)), signing_key), "public key", "not an Ed25519")


def test_reserved_and_required_files(parts, zip_writer: Writer, signing_key) -> None:
    manifest = parts.manifest()
    manifest["files"] = [f for f in manifest["files"] if f["path"] != "audit/consistency.json"]
    entries = parts.seal(manifest)
    del entries["audit/consistency.json"]
    assert_invalid(
        verify(zip_writer(entries), signing_key), "file inventory", "audit/consistency.json is not listed"
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\n", "line 1 is blank"),
        (b"  \r\n", "line 1 is blank"),
        (b"not json\n", "line 1 is not valid JSON"),
        (b"[1]\n", "line 1 must be a JSON object"),
        (b'{"seq": "0"}\n', "'seq' must be an integer"),
        (b'{"seq": 0, "leaf_hash": "00"}\n', "leaf_hash must be 64 lowercase hex"),
        (b'{"seq": 0, "leaf_hash": "' + b"0" * 64 + b'", "event": []}\n', "'event' must be an object"),
        (
            b'{"seq": 0, "leaf_hash": "' + b"0" * 64 + b'", "event": {"n": 9007199254740993}}\n',
            "canonicalised",
        ),
    ],
)
def test_malformed_event_lines(parts, zip_writer: Writer, signing_key, content: bytes, fragment: str) -> None:
    parts.files["audit/events.jsonl"] = content
    assert_invalid(verify(zip_writer(parts.seal()), signing_key), "audit events", fragment)


def test_overlong_inclusion_proof(parts, zip_writer: Writer, signing_key) -> None:
    _edit_event_line(parts, 0, lambda r: r.update(inclusion_proof=["00" * 32] * 200))
    assert_invalid(verify(zip_writer(parts.seal()), signing_key), "audit events", "at most 128")


# ------------------------------------------------------------------------------------------------
# The command line, run as a lone copy of the file
# ------------------------------------------------------------------------------------------------


def run_alone(tmp_path: Path, *args: str, stdlib_only: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a copy of verify_package.py with the project made unimportable, as a recipient would
    (``stdlib_only``: with ``cryptography`` unimportable too, as on a bare Python)."""
    alone = tmp_path / "alone"
    alone.mkdir(exist_ok=True)
    script = shutil.copy(VERIFIER, alone / "verify_package.py")
    blocked = "sys.modules['cryptography'] = None; " if stdlib_only else ""
    guard = (
        f"import runpy, sys; sys.modules['audit'] = None; sys.modules['django'] = None; {blocked}"
        f"sys.argv = [{str(script)!r}, *sys.argv[1:]]; runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-I", "-c", guard, *args], cwd=alone, capture_output=True, text=True, timeout=120
    )


def test_cli_valid_and_invalid(parts, zip_writer: Writer, signing_key, other_key, tmp_path: Path) -> None:
    good = zip_writer(parts.seal())
    key_file = tmp_path / "published.pem"
    key_file.write_text(public_key_pem(signing_key))
    result = run_alone(tmp_path, str(good), "--public-key", str(key_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "VERDICT: VALID"
    assert "PASS  audit events: 14 events" in result.stdout
    assert "Traceback" not in result.stderr

    wrong_key = tmp_path / "wrong.pem"
    wrong_key.write_text(public_key_pem(other_key))
    result = run_alone(tmp_path, str(good), "--public-key", str(wrong_key))
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("VERDICT: INVALID: public key: package signed by key")

    entries = parts.seal()
    entries["records/planted.txt"] = b"x"
    result = run_alone(tmp_path, str(zip_writer(entries)), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["reason"] == "file inventory: unlisted file records/planted.txt is in the package"
    assert report["verdict"].startswith("VERDICT: INVALID: file inventory")


def test_cli_never_prints_a_traceback(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"\x00" * 100)
    result = run_alone(tmp_path, str(junk))
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("VERDICT: INVALID: zip structure: cannot open")
    assert result.stderr == ""
    result = run_alone(tmp_path, str(junk), "--public-key", str(tmp_path / "absent.pem"))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("VERDICT: CANNOT VERIFY: cannot read --public-key file")


def test_verifier_imports_only_stdlib_and_cryptography() -> None:
    tree = ast.parse(VERIFIER.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports would break the standalone copy"
            roots.add((node.module or "").split(".")[0])
    assert roots - set(sys.stdlib_module_names) - {"__future__"} == {"cryptography"}


# ------------------------------------------------------------------------------------------------
# The verifier's private copies agree with the project's modules
# ------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 600), st.data())
def test_verifier_copy_agrees_with_merkle(size: int, data: st.DataObject) -> None:
    rng = random.Random(size)
    hashes = [rng.randbytes(32) for _ in range(size)]
    tree = merkle.MerkleTree.from_leaf_hashes(hashes)
    root = tree.root()
    index = data.draw(st.integers(0, size - 1))
    proof = tree.inclusion_proof(index)
    if data.draw(st.booleans()) and proof:
        proof[data.draw(st.integers(0, len(proof) - 1))] = rng.randbytes(32)
    claimed_index = data.draw(st.sampled_from([index, (index + 1) % size]))
    args = (hashes[index], claimed_index, size, proof, root)
    assert vp.verify_inclusion(*args) == merkle.verify_inclusion(*args)

    old = data.draw(st.integers(0, size))
    cproof = tree.consistency_proof(old)
    if data.draw(st.booleans()) and cproof:
        cproof[data.draw(st.integers(0, len(cproof) - 1))] = rng.randbytes(32)
    old_root = tree.root(old) if data.draw(st.booleans()) else rng.randbytes(32)
    cargs = (old, size, old_root, root, cproof)
    assert vp.verify_consistency(*cargs) == merkle.verify_consistency(*cargs)
    assert vp.leaf_hash(hashes[0]) == merkle.leaf_hash(hashes[0])
    assert vp.node_hash(hashes[0], root) == merkle.node_hash(hashes[0], root)


def test_verifier_copy_source_matches() -> None:
    """The copied functions are the same code, so a fix in one place cannot silently miss the other."""
    from audit import canonical

    def body(module: object, name: str) -> str:
        tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                node.body = [n for n in node.body if not isinstance(n, ast.Expr)]  # drop docstrings
                return ast.dump(node)
        raise AssertionError(name)

    for name in ("canonical_json", "_encode", "_encode_int", "_encode_string", "_encode_float", "_utf16_key"):
        assert body(canonical, name) == body(vp, name), name
    for name in ("verify_inclusion", "verify_consistency", "_is_hash", "_is_size"):
        assert body(merkle_proofs, name) == body(vp, name), name
