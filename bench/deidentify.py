"""Benchmark the teaching-set de-identifier on hostile input: seconds per 200,000-character text.

Run: ``.venv/bin/python bench/deidentify.py`` (optionally ``--rounds N``). Prints one line per input
shape (the same shapes tests/peer/test_deidentify.py feeds it) with the best of N rounds; the test only
guards against a hang, the speed is measured here.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from portal.peer.deidentify import Identifiers, deidentify  # noqa: E402  (path set up above)

SHAPES = {
    "digits": "1" * 200_000,
    "e-mail-like": ("a" * 60 + "@") * 3_000,
    "titles": "Dr. " * 50_000,
    "dotted numbers": ("1." * 5 + " ") * 20_000,
    "labels": "MRN:" * 50_000,
    "zero-width": "\u200b" * 200_000,
}


def main() -> None:
    """Time each shape, best of ``--rounds``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    known = Identifiers.of(names=[f"Name{i}" for i in range(200)], numbers=[f"X{i:05d}" for i in range(200)])
    print(f"python {platform.python_version()} on {platform.machine()}, best of {rounds}")
    for name, text in SHAPES.items():
        best = min(_timed(text, known) for _ in range(rounds))
        print(f"{name:15} {len(text):>8,} chars  {best:7.3f} s")


def _timed(text: str, known: Identifiers) -> float:
    started = time.perf_counter()
    deidentify(text, known)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
