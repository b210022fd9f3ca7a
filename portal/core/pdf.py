"""PDFs that print every name: fpdf2 documents with an embedded Unicode font (DejaVu Sans).

The PDF core fonts (Helvetica and friends) cover Latin-1 only, so a Greek, Cyrillic, Polish or
Vietnamese name would print as "?". DejaVu Sans ships in this package (``fonts/``, with its licence),
so nothing is downloaded; fpdf2 embeds the subset of glyphs a document uses.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fpdf import FPDF

FONT_DIR = Path(__file__).resolve().parent / "fonts"
# fontTools logs the glyph names of every subset at INFO: for a PDF of names, that is PHI in the log.
logging.getLogger("fontTools").setLevel(logging.WARNING)

#: The family name documents pass to ``set_font``.
FAMILY = "DejaVu"


def unicode_pdf(*, orientation: str = "P") -> FPDF:
    """An A4 document (millimetres) with DejaVu Sans registered as :data:`FAMILY`, regular and bold."""
    pdf = FPDF(orientation=orientation, unit="mm", format="A4")
    pdf.add_font(FAMILY, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FAMILY, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_font(FAMILY, "", 10)
    return pdf


def fit(pdf: FPDF, text: str, width: float) -> str:
    """``text`` shortened with an ellipsis so it fits ``width`` mm in the current font."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _column_widths(
    pdf: FPDF, header: list[str], rows: list[list[str]], size: float, cap: float
) -> list[float]:
    """Widths (mm) that fit each header's longest word and each column's widest cell (at most ``cap``)."""
    pdf.set_font(FAMILY, "B", size)
    need = [max(pdf.get_string_width(word) for word in title.split() or [""]) + 2 for title in header]
    pdf.set_font(FAMILY, "", size)
    for row in rows:
        need = [max(n, min(pdf.get_string_width(value) + 2, cap)) for n, value in zip(need, row, strict=True)]
    return need


def table(pdf: FPDF, header: list[str], rows: list[list[str]], *, size: float = 7.5, cap: float = 60) -> None:
    """A bordered table across the page width, repeated header on every page.

    Columns are sized so that no header word is broken and no title runs into its neighbour (titles
    wrap inside their own column); the font shrinks (down to 5 pt) when the page is too narrow, and a
    cell wider than ``cap`` mm is shortened with an ellipsis.
    """
    while True:
        widths = _column_widths(pdf, header, rows, size, cap)
        if sum(widths) <= pdf.epw or size <= 5:
            break
        size -= 0.5
    spare = max(pdf.epw - sum(widths), 0) / len(widths)
    widths = [w + spare for w in widths]
    line = size * 0.45

    def header_row() -> None:
        pdf.set_font(FAMILY, "B", size)
        lines = [
            len(pdf.multi_cell(w, line, text, dry_run=True, output="LINES"))
            for w, text in zip(widths, header, strict=True)
        ]
        height = max(lines) * line
        x, y = pdf.get_x(), pdf.get_y()
        for width, text in zip(widths, header, strict=True):
            pdf.rect(x, y, width, height)
            pdf.set_xy(x, y)
            pdf.multi_cell(width, line, text, border=0, align="L")
            x += width
        pdf.set_xy(pdf.l_margin, y + height)
        pdf.set_font(FAMILY, "", size)

    header_row()
    for row in rows:
        if pdf.get_y() + 6 > pdf.page_break_trigger:
            pdf.add_page()
            header_row()
        for width, value in zip(widths, row, strict=True):
            pdf.cell(width, 6, fit(pdf, value, width - 2), border=1)
        pdf.ln()
