"""Exports of the chair's performance summary: CSV (formula-injection safe) and PDF (fpdf2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fpdf import FPDF

from portal.review.selectors import RADPEER_VALUES, PerformanceRow

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HEADER = (
    "radiologist",
    "cases compared",
    "with a discrepancy",
    "with a significant discrepancy",
    "significant rate",
    "committee reviews",
    *(f"RADPEER {s}" for s in RADPEER_VALUES),
    "major (2b+3b) rate",
    "feedback sent",
    "feedback acknowledged",
)


def csv_safe(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ (or tab/CR) would start a formula."""
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _cells(row: PerformanceRow) -> list[object]:
    return [
        row.name,
        row.compared,
        row.with_discrepancy,
        row.significant,
        f"{row.significant_rate * 100:.1f}%",
        row.reviewed,
        *(row.radpeer.get(s, 0) for s in RADPEER_VALUES),
        f"{row.major_discrepancy_rate * 100:.1f}%",
        row.feedback,
        row.acknowledged,
    ]


def performance_csv_rows(rows: Sequence[PerformanceRow], start: dt.date, end: dt.date) -> list[list[str]]:
    """The CSV's rows: a period line, the header, one row per radiologist; every cell made safe."""
    out = [[csv_safe(f"Concordance performance summary {start.isoformat()} to {end.isoformat()}")]]
    out.append([csv_safe(h) for h in HEADER])
    out.extend([csv_safe(c) for c in _cells(row)] for row in rows)
    return out


def _latin1(text: str) -> str:
    # The PDF core fonts are Latin-1; anything else prints as "?" rather than failing the export.
    return text.encode("latin-1", "replace").decode("latin-1")


def performance_pdf(rows: Sequence[PerformanceRow], start: dt.date, end: dt.date) -> bytes:
    """An A4 landscape PDF of the summary (the OPPE/FPPE file a credentials committee keeps)."""
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 14)
    pdf.cell(0, 9, _latin1("Radiologist performance summary (OPPE/FPPE)"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)
    pdf.cell(
        0, 6, _latin1(f"Studies from {start.isoformat()} to {end.isoformat()}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(2)
    widths = [48, 17, 17, 20, 17, 17, 12, 12, 12, 12, 12, 19, 17, 21]
    pdf.set_font("helvetica", "B", 7)
    for width, title in zip(widths, HEADER, strict=True):
        pdf.cell(width, 8, _latin1(title.replace("with a ", "")[:22]), border=1)
    pdf.ln()
    pdf.set_font("helvetica", "", 8)
    for row in rows:
        for width, value in zip(widths, _cells(row), strict=True):
            pdf.cell(width, 6, _latin1(str(value))[:40], border=1)
        pdf.ln()
    if not rows:
        pdf.cell(0, 6, "No cases in this period.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("helvetica", "I", 7)
    pdf.multi_cell(
        0,
        4,
        "Engine figures compare the clinical AI draft with the signed report; RADPEER figures are the "
        "committee's current scores (corrections replace earlier scores). Major = 2b or 3b.",
    )
    return bytes(pdf.output())
