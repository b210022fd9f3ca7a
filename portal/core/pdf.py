"""PDFs that print every name: fpdf2 documents with an embedded Unicode font (DejaVu Sans).

The PDF core fonts (Helvetica and friends) cover Latin-1 only, so a Greek, Cyrillic, Polish or
Vietnamese name would print as "?". DejaVu Sans ships in this package (``fonts/``, with its licence),
so nothing is downloaded; fpdf2 embeds the subset of glyphs a document uses.
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

FONT_DIR = Path(__file__).resolve().parent / "fonts"
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


def table(
    pdf: FPDF, header: list[str], rows: list[list[str]], widths: list[float], *, size: float = 7.5
) -> None:
    """A bordered table whose header cells wrap inside their column (no overlapping titles), repeated
    on every page. ``widths`` in millimetres, one per column.
    """
    line = size * 0.45

    def header_row() -> None:
        pdf.set_font(FAMILY, "B", size)
        heights = [
            len(pdf.multi_cell(w, line, text, dry_run=True, output="LINES"))
            for w, text in zip(widths, header, strict=True)
        ]
        height = max(heights) * line
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
