"""Benchmark the discrepancy engine: pairs per second on one core and peak memory.

Run: ``.venv/bin/python bench/compare.py`` (optionally ``--rounds N``, ``--real N`` for the first N pairs
of the real-text development set). Prints a short table.
Pairs come from tests/data/compare/hard_pairs.jsonl. "cold" clears the per-text caches before every
pair (every report is new); "warm" keeps them (a re-inference run comparing new drafts against the
same signed reports); "1 MB" is one hostile pair of a 1,000,000-character draft.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.compare import compare, devset  # noqa: E402  (path set up above so the script runs from a checkout)
from inference.compare.engine import _ngrams  # noqa: E402
from inference.compare.extract import analyse  # noqa: E402

PAIRS = ROOT / "tests" / "data" / "compare" / "hard_pairs.jsonl"


def _clear_caches() -> None:
    analyse.cache_clear()
    _ngrams.cache_clear()


def _load_pairs(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [(r["candidate"], r["reference"]) for r in map(json.loads, handle) if r]


def _throughput(pairs: list[tuple[str, str]], rounds: int, cold: bool) -> float:
    return _timed(pairs, rounds, cold)[0]


def _timed(pairs: list[tuple[str, str]], rounds: int, cold: bool) -> tuple[float, float]:
    """Pairs per second by the wall clock and by this process's CPU time.

    On a machine shared with other jobs the wall clock counts time spent waiting for the core; CPU time
    does not, so it is the steadier figure for "pairs/s on one core".
    """
    _clear_caches()
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        for candidate, reference in pairs:
            if cold:
                _clear_caches()
            compare(candidate, reference)
    done = rounds * len(pairs)
    return done / (time.perf_counter() - started), done / max(time.process_time() - cpu_started, 1e-9)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes over the pair file (default 5)")
    parser.add_argument(
        "--pairs", type=Path, default=PAIRS, help="JSON-lines pairs (default: hard_pairs.jsonl)"
    )
    parser.add_argument(
        "--real", type=int, default=0, metavar="N", help="use the first N pairs of the real-text set instead"
    )
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the brief asks

    if args.real:
        # Real signed reports (tests/data/compare/real): full length, every text distinct per pair.
        pairs = [(r["candidate"], r["reference"]) for r in devset.build()[: args.real]]
    else:
        pairs = _load_pairs(args.pairs)
    chars = sum(len(c) + len(r) for c, r in pairs) / len(pairs)
    cold, cold_cpu = _timed(pairs, args.rounds, cold=True)
    warm = _throughput(pairs, args.rounds, cold=False)
    # Full-length reports (the multi-sentence "r" pairs) are closer to production than one-liners.
    long_pairs = [(c, r) for c, r in pairs if len(c) + len(r) >= 300]
    long_chars = sum(len(c) + len(r) for c, r in long_pairs) / max(1, len(long_pairs))
    long_cold = _throughput(long_pairs, args.rounds * 4, cold=True) if long_pairs else 0.0

    _clear_caches()
    tracemalloc.start()
    for candidate, reference in pairs:
        compare(candidate, reference)
    _, peak_pairs = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    sentence = "Small left pleural effusion and no pneumothorax, stable compared with prior 2.3 x 1.5 cm. "
    huge = (sentence * (1_000_000 // len(sentence) + 1))[:1_000_000]
    _clear_caches()
    started = time.perf_counter()
    compare(huge, "Small left pleural effusion.")
    huge_seconds = time.perf_counter() - started
    _clear_caches()
    tracemalloc.start()
    compare(huge, "Small left pleural effusion.")
    _, peak_huge = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    _clear_caches()
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    machine = f"python {platform.python_version()} on {platform.machine()}"
    print(f"{machine}, {os.cpu_count()} CPUs visible, 1 used")
    print(f"{len(pairs)} pairs, mean {chars:.0f} characters per pair (both texts), {args.rounds} rounds")
    print(f"{'measure':<34} {'value':>12}")
    print(f"{'pairs/s, cold caches':<34} {cold:>12.0f}")
    print(f"{'pairs/s, cold caches, CPU time':<34} {cold_cpu:>12.0f}")
    print(f"{'pairs/s, warm caches':<34} {warm:>12.0f}")
    print(f"{'ms per pair, cold':<34} {1000 / cold:>12.2f}")
    print(f"{'pairs/s, cold, full reports':<34} {long_cold:>12.0f}")
    print(f"{'  (mean characters per pair)':<34} {long_chars:>12.0f}")
    print(f"{'peak traced memory, pair set (MB)':<34} {peak_pairs / 2**20:>12.1f}")
    print(f"{'1 MB draft: seconds':<34} {huge_seconds:>12.2f}")
    print(f"{'1 MB draft: peak traced (MB)':<34} {peak_huge / 2**20:>12.1f}")
    print(f"{'process max RSS (MB)':<34} {max_rss_mb:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
