"""Rebuild reports.jsonl from the two public sources (run by hand; see SOURCES.md).

Usage: python tests/data/compare/real/extract_sources.py IU_CSV MTSAMPLES_CSV [MTSAMPLES_CSV ...]

Texts are copied verbatim (field by field); nothing is rewritten, so the NoDerivatives terms of the
Indiana collection are kept. Controlled edits are made at evaluation time, never stored.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).with_name("reports.jsonl")
#: Every IU report with both sections is kept (the collection is small enough).
IU_FIELDS = ("indication", "comparison", "findings", "impression")
_REPORT_RE = re.compile(r"FINDINGS?:.*IMPRESSION:", re.S)


def _iu_rows(path: Path) -> list[dict[str, object]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row["findings"].strip() or not row["impression"].strip():
                continue
            rows.append(
                {
                    "id": f"iu{int(row['uid']):04d}",
                    "source": "iu-openi",
                    "study": "XR chest",
                    "problems": row["Problems"],
                    "sections": {name: row[name].strip() for name in IU_FIELDS},
                }
            )
    return rows


def _mtsamples_rows(paths: list[Path]) -> list[dict[str, object]]:
    csv.field_size_limit(10**8)
    seen: dict[str, str] = {}
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    if len(cell) > 200 and _REPORT_RE.search(cell):
                        seen.setdefault(cell.strip()[:80], cell.strip())
    rows = []
    for index, text in enumerate(sorted(seen.values())):
        # MTSamples stores section breaks as ",": "FINDINGS:, text" -> keep the text, only mark lines.
        rows.append(
            {"id": f"mt{index:03d}", "source": "mtsamples", "study": "", "problems": "", "text": text}
        )
    return rows


def main(argv: list[str]) -> int:
    """Write reports.jsonl from the IU CSV and one or more MTSamples CSV copies."""
    rows = _iu_rows(Path(argv[0])) + _mtsamples_rows([Path(p) for p in argv[1:]])
    with OUT.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} reports -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
