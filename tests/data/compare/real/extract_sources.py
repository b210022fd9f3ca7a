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

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from inference.compare import devset  # noqa: E402  (path set up above so the script runs from a checkout)

OUT = Path(__file__).with_name("reports.jsonl")
#: Normal IU reports kept for normal-vs-normal pairs (the first ones by uid).
NORMALS_KEPT = 450
IU_FIELDS = ("indication", "comparison", "findings", "impression")
_REPORT_RE = re.compile(r"FINDINGS?:.*IMPRESSION:", re.S)
#: An imaging report names its exam near the top; operative and clinic notes with the same headers do not.
_IMAGING_RE = re.compile(r"\b(?:EXAM|TECHNIQUE|ULTRASOUND|MRI|CT|views?|radiograph|FINDINGS)\b", re.I)


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
                    if len(cell) > 200 and _REPORT_RE.search(cell) and _IMAGING_RE.search(cell[:150]):
                        seen.setdefault(cell.strip()[:80], cell.strip())
    rows = []
    for index, text in enumerate(sorted(seen.values())):
        # MTSamples stores section breaks as ",": "FINDINGS:, text" -> keep the text, only mark lines.
        rows.append(
            {"id": f"mt{index:03d}", "source": "mtsamples", "study": "", "problems": "", "text": text}
        )
    return rows


def _selected(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Keep what the development set uses: reports that support a controlled edit, the first normal
    reports, and every MTSamples report. The rest of the collection adds size, not coverage."""
    kept, normals = [], 0
    for row in rows:
        report = devset.with_text(dict(row))
        if row["source"] != "iu-openi" or any(True for _ in devset.edit_pairs(report)):
            kept.append(row)
        elif row["problems"] == "normal" and normals < NORMALS_KEPT:
            normals += 1
            kept.append(row)
    return kept


def main(argv: list[str]) -> int:
    """Write reports.jsonl from the IU CSV and one or more MTSamples CSV copies."""
    rows = _selected(_iu_rows(Path(argv[0])) + _mtsamples_rows([Path(p) for p in argv[1:]]))
    with OUT.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} reports -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
