"""Shared fixtures for the audit cryptography tests: keys and a builder of export packages.

The builder is also a compact reference for the exporter: it shows exactly what goes into a package
that ``audit/verify_package.py`` accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.canonical import canonical_json
from audit.merkle import MerkleTree, leaf_hash
from audit.signing import key_fingerprint, public_key_pem, sign_bytes, sign_tree_head

BASE_TIMESTAMP_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def make_event(i: int) -> dict[str, Any]:
    """A plausible audit event: PHI view or record change, with non-ASCII text and a float."""
    return {
        "action": "phi.view" if i % 2 else "report.sign",
        "actor": {"id": f"user-{i % 3}", "role": "radiologist"},
        "object": {"type": "records.Study", "id": str(1000 + i)},
        "recorded": f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "detail": {"score": 0.5 + i / 100, "note": "contrôle qualité ✓", "seq_hint": i},
    }


@dataclass
class PackageParts:
    """Unsealed package contents; :meth:`seal` turns them into ZIP entries with manifest and signature."""

    key: Ed25519PrivateKey
    files: dict[str, bytes]
    checkpoints: list[dict[str, Any]]
    extra_manifest: dict[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {
            "package_id": "pkg-0001",
            "created_at": "2025-01-02T03:04:05Z",
            "files": [
                {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in sorted(self.files.items())
            ],
            "checkpoints": self.checkpoints,
            "public_key_pem": public_key_pem(self.key),
            "public_key_fingerprint": key_fingerprint(self.key),
            **self.extra_manifest,
        }

    def seal(self, manifest: dict[str, Any] | None = None) -> dict[str, bytes]:
        """All ZIP entries; the manifest is pretty-printed on purpose: only its exact bytes matter."""
        manifest_bytes = json.dumps(manifest or self.manifest(), indent=2).encode()
        signature = base64.b64encode(sign_bytes(self.key, manifest_bytes))
        return {"manifest.json": manifest_bytes, "manifest.sig": signature + b"\n", **self.files}


def build_parts(
    key: Ed25519PrivateKey,
    *,
    n_events: int = 40,
    checkpoint_sizes: tuple[int, ...] = (13, 32, 40),
    exported: list[int] | None = None,
) -> PackageParts:
    """Build a log of ``n_events`` events, sign checkpoints and export a subset of events with proofs."""
    events = [make_event(i) for i in range(n_events)]
    tree = MerkleTree.from_leaf_hashes(leaf_hash(canonical_json(e)) for e in events)
    checkpoints = []
    for j, size in enumerate(checkpoint_sizes):
        root = tree.root(size)
        ts = BASE_TIMESTAMP_MS + j * 60_000
        checkpoints.append(
            {
                "tree_size": size,
                "root_hash": root.hex(),
                "timestamp_ms": ts,
                "signature": base64.b64encode(sign_tree_head(key, size, root, ts)).decode(),
            }
        )
    seqs = exported if exported is not None else list(range(0, n_events, 3))
    lines = []
    for seq in seqs:
        cp_size = min(s for s in checkpoint_sizes if s > seq)
        lines.append(
            json.dumps(
                {
                    "seq": seq,
                    "leaf_hash": tree.leaf_hash(seq).hex(),
                    "event": events[seq],
                    "inclusion_proof": [h.hex() for h in tree.inclusion_proof(seq, cp_size)],
                    "checkpoint_tree_size": cp_size,
                },
                ensure_ascii=False,
            )
        )
    consistency = [
        {"old_size": a, "new_size": b, "proof": [h.hex() for h in tree.consistency_proof(a, b)]}
        for a, b in zip(checkpoint_sizes, checkpoint_sizes[1:], strict=False)
    ]
    files = {
        "audit/events.jsonl": ("\n".join(lines) + "\n").encode() if lines else b"",
        "audit/consistency.json": json.dumps(consistency).encode(),
        "records/report-1000.txt": b"FINDINGS: No acute cardiopulmonary process.\n",
    }
    return PackageParts(key=key, files=files, checkpoints=checkpoints)


def write_zip(path: Path, entries: dict[str, bytes] | list[tuple[str, bytes]]) -> Path:
    """Write entries (a list allows duplicate names) to a deflated ZIP."""
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return path


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def parts(signing_key: Ed25519PrivateKey) -> PackageParts:
    return build_parts(signing_key)


@pytest.fixture
def zip_writer(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(10_000))

    def write(entries: dict[str, bytes] | list[tuple[str, bytes]]) -> Path:
        return write_zip(tmp_path / f"package-{next(counter)}.zip", entries)

    return write


@pytest.fixture
def builder() -> Callable[..., PackageParts]:
    return build_parts


@pytest.fixture
def event_factory() -> Callable[[int], dict[str, Any]]:
    return make_event
