"""Benchmark of the audit log's Merkle tree (audit/merkle.py).

Run from the repository root::

    .venv/bin/python bench/merkle.py [--leaves 1000000] [--proofs 10000] [--seed 9162]

Measures, for one log of ``--leaves`` events: leaf hashing, the streaming root (O(log n) memory), the
incremental accumulator (what the database layer runs per event), building the cached tree, inclusion
and consistency proof generation and verification, and proof sizes. Prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.merkle import (  # path set up above so the script runs from anywhere
    HASH_SIZE,
    CompactRange,
    MerkleTree,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=9162)
    args = parser.parse_args()
    n, k = args.leaves, args.proofs
    rng = random.Random(args.seed)
    rows: list[tuple[str, str, str, str]] = []

    def row(op: str, total: float, count: int, note: str = "") -> None:
        rows.append((op, fmt_time(total), fmt_time(total / count) if count else "", note))

    t, leaves = timed(lambda: [leaf_hash(i.to_bytes(8, "big")) for i in range(n)])
    row(f"leaf_hash x {n:,}", t, n, "SHA-256(0x00 || 8-byte entry)")

    t, root = timed(lambda: root_from_leaf_hashes(iter(leaves)))
    row(f"root_from_leaf_hashes ({n:,}, streaming)", t, n, f"stack <= {n.bit_length()} hashes")

    def accumulate() -> CompactRange:
        acc = CompactRange()
        for h in leaves:
            acc.append(h)
        return acc

    t, acc = timed(accumulate)
    assert acc.root() == root
    row(f"CompactRange.append x {n:,}", t, n, f"state: {len(acc.to_state())} (level, hash) pairs")

    t, tree = timed(lambda: MerkleTree.from_leaf_hashes(leaves))
    assert tree.root() == root
    tree_bytes = sum(len(level) for level in tree._levels)  # reading the layout for the report only
    row(f"MerkleTree build ({n:,})", t, n, f"{tree_bytes / 2**20:.0f} MiB of hashes")

    t, _ = timed(lambda: tree.root())
    row("MerkleTree.root()", t, 1, "from cached subtrees")

    indices = [rng.randrange(n) for _ in range(k)]
    t, proofs = timed(lambda: [tree.inclusion_proof(i) for i in indices])
    sizes = [len(p) for p in proofs]
    row(f"inclusion_proof x {k:,} (size {n:,})", t, k)
    t, ok = timed(
        lambda: all(verify_inclusion(leaves[i], i, n, p, root) for i, p in zip(indices, proofs, strict=True))
    )
    assert ok
    row(f"verify_inclusion x {k:,}", t, k)

    old_sizes = [rng.randrange(1, n) for _ in range(k)]
    t, cproofs = timed(lambda: [tree.consistency_proof(m) for m in old_sizes])
    csizes = [len(p) for p in cproofs]
    row(f"consistency_proof x {k:,} (old -> {n:,})", t, k)
    old_roots = [tree.root(m) for m in old_sizes]
    t, ok = timed(
        lambda: all(
            verify_consistency(m, n, r, root, p)
            for m, r, p in zip(old_sizes, old_roots, cproofs, strict=True)
        )
    )
    assert ok
    row(f"verify_consistency x {k:,}", t, k)

    print(f"# Merkle benchmark, {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
    print(f"# python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print()
    widths = [max(len(r[i]) for r in [*rows, ("operation", "total", "per item", "notes")]) for i in range(4)]
    header = ("operation", "total", "per item", "notes")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()
    print(f"Proof sizes for a log of {n:,} events ({HASH_SIZE}-byte hashes):")
    print(
        f"  inclusion:   mean {statistics.mean(sizes):.1f} hashes, max {max(sizes)} "
        f"({max(sizes) * HASH_SIZE} bytes; ceil(log2 n) = {(n - 1).bit_length()})"
    )
    print(
        f"  consistency: mean {statistics.mean(csizes):.1f} hashes, max {max(csizes)} "
        f"({max(csizes) * HASH_SIZE} bytes)"
    )
    print(f"  root: {root.hex()}")


if __name__ == "__main__":
    main()
