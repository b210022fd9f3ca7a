"""Exports of the chair's performance summary: CSV (a plain table, formula-injection safe) and PDF.

Both are built from the same :class:`PerformanceRow` cells as the page, so the three agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from portal.core.pdf import FAMILY, table, unicode_pdf
from portal.review.selectors import RADPEER_VALUES, PerformanceRow

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HEADER = (
    "radiologist",
    "cases compared",
    "with a discrepancy",
    "with a significant discrepancy",
    "significant rate",
    "committee reviews",
    "radiologist erred",
    *(f"RADPEER {s}" for s in RADPEER_VALUES),
    "major (2b+3b) rate",
    "AI errors (model's, not counted)",
    "AI error carried into report",
    "feedback sent",
    "feedback acknowledged",
)
NOTE = (
    "Engine figures compare the clinical AI draft with the signed report, whoever erred. RADPEER and the "
    "major rate count only what the committee attributed to the signed report (including AI errors "
    "carried into it); errors of the AI draft alone count for the model version, not the radiologist. "
    "Major = 2b or 3b, over all committee reviews of the radiologist's cases (current reviews only)."
)


def csv_safe(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ (or tab/CR) would start a formula."""
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def cells(row: PerformanceRow) -> list[str]:
    """One radiologist's row as the page, the CSV and the PDF print it."""
    return [
        row.name,
        str(row.compared),
        str(row.with_discrepancy),
        str(row.significant),
        f"{row.significant_rate * 100:.1f}%",
        str(row.reviewed),
        str(row.radiologist_errors),
        *(str(row.radpeer.get(s, 0)) for s in RADPEER_VALUES),
        f"{row.major_discrepancy_rate * 100:.1f}%",
        str(row.ai_errors),
        str(row.carried),
        str(row.feedback),
        str(row.acknowledged),
    ]


def performance_csv_rows(rows: Sequence[PerformanceRow]) -> list[list[str]]:
    """The CSV's rows: the header first, then one row per radiologist; every cell made safe.

    A plain table (no title line), so spreadsheets and scripts read the header as the header; the
    period is in the file name.
    """
    out = [[csv_safe(h) for h in HEADER]]
    out.extend([csv_safe(c) for c in cells(row)] for row in rows)
    return out


def performance_pdf(
    rows: Sequence[PerformanceRow], start: dt.date, end: dt.date, *, as_of: dt.datetime | None
) -> bytes:
    """An A4 landscape PDF of the summary (the OPPE/FPPE file a credentials committee keeps).

    Names print in any script (embedded DejaVu Sans); header titles wrap inside their columns.
    """
    pdf = unicode_pdf(orientation="L")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font(FAMILY, "B", 14)
    pdf.cell(0, 9, "Radiologist performance summary (OPPE/FPPE)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 9)
    stamp = as_of.strftime("%Y-%m-%d %H:%M %Z") if as_of else "not computed yet"
    pdf.cell(
        0,
        6,
        f"Studies from {start.isoformat()} to {end.isoformat()}; figures as of {stamp}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)
    table(pdf, list(HEADER), [cells(row) for row in rows])
    if not rows:
        pdf.cell(0, 6, "No cases in this period.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(FAMILY, "", 7)
    pdf.multi_cell(0, 4, NOTE)
    return bytes(pdf.output())
