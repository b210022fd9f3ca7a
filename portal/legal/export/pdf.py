"""``report.pdf``: cover sheet; per study its AI drafts and signed reports with the differing words
marked and the differences in plain language, then its timeline; then the chain of custody.

A line whose text is all Latin-1 is printed in a core font (Helvetica, Courier); a line with any other
character in the embedded DejaVu fonts (portal/core/fonts, their licence beside them), so names and words
outside Latin-1 print as written, never as "?". Not DejaVu throughout: fpdf2 measures and maps every
character of an embedded font in Python, which made a 300-study package's PDF several times slower.
Report texts and timelines are monospaced and wrapped by character count for the same reason.

Every text from the records is made safe before it reaches fpdf2: control characters removed and
length capped, so hostile text can neither break the document nor smuggle markup (fpdf2 interprets
none unless asked, and we never ask).
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Iterator
from typing import Any

from fpdf import FPDF

from portal.core.pdf import FONT_DIR
from portal.legal.export.report_texts import ComparedPair, MarkedText

FONTS = FONT_DIR  # one copy of DejaVu, in portal/core/fonts with its licence
#: (core font, embedded font) for proportional and monospaced text.
SANS, MONO = ("Helvetica", "DejaVuSans"), ("Courier", "DejaVuSansMono")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NOT_LATIN1 = re.compile(r"[^\x00-\xff]")
_MAX_TEXT = 600
# Courier is 0.6 em wide, DejaVu Sans Mono 0.602 em: at 7.5 pt about 1.59 mm, so 180 mm of A4 text
# width holds 113 columns; report texts at 8 pt, 1.69 mm, 106 columns.
_MONO_COLUMNS = 110
_TEXT_COLUMNS = 104
_TEXT_PT = 8.0
_MM_PER_PT = 25.4 / 72
RED = (180, 0, 0)
BLACK = (0, 0, 0)
GREY = (90, 90, 90)


def safe(value: object, limit: int = _MAX_TEXT) -> str:
    """Printable text without control characters, shortened to ``limit`` characters (the full texts
    are in records/)."""
    text = _CONTROL.sub(" ", str(value if value is not None else ""))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


@dataclasses.dataclass
class TimelineEntry:
    """One line of a study's timeline: when, what, and whether it is a highlighted difference."""

    when: str
    what: str
    highlight: bool = False


@dataclasses.dataclass
class StudyTimeline:
    """What the PDF says about one study: its texts compared, then its timeline."""

    accession: str
    description: str
    entries: list[TimelineEntry]
    pairs: list[ComparedPair] = dataclasses.field(default_factory=list)


class ReportPdf:
    """Builds the PDF as the studies stream past; :meth:`output` returns the bytes."""

    def __init__(self) -> None:
        pdf = FPDF(format="A4")
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.set_title("Concordance legal export")
        pdf.set_creator("Concordance")
        self.pdf = pdf
        self._embedded = False  # DejaVu is parsed (about a second) only once a text needs it

    def _font(self, family: tuple[str, str], text: str, *, style: str = "", size: float = 9) -> None:
        """The core font when ``text`` is Latin-1, else the embedded one (no bold monospace: the
        embedded monospaced font is used in its regular weight)."""
        embedded = _NOT_LATIN1.search(text) is not None
        if embedded and not self._embedded:
            self.pdf.add_font(SANS[1], "", FONTS / "DejaVuSans.ttf")
            self.pdf.add_font(SANS[1], "B", FONTS / "DejaVuSans-Bold.ttf")
            self.pdf.add_font(MONO[1], "", FONTS / "DejaVuSansMono.ttf")
            self._embedded = True
        if embedded and family == MONO:
            style = style.replace("B", "")
        self.pdf.set_font(family[1] if embedded else family[0], style=style, size=size)

    def _line(
        self, text: str, *, size: float = 9, style: str = "", color: tuple = BLACK, height: float = 4.5
    ) -> None:
        """A paragraph, wrapped by character count at a conservative 0.6 em per character (Helvetica
        averages 0.5); a line that still does not fit (all capitals, say) goes through multi_cell,
        whose exact line breaking costs a few milliseconds a call."""
        pdf = self.pdf
        text = safe(text)
        self._font(SANS, text, style=style, size=size)
        pdf.set_text_color(*color)
        columns = max(20, int(pdf.epw / (size * 0.6 * _MM_PER_PT)))
        for line in textwrap.wrap(text, columns, subsequent_indent="    ") or [""]:
            if pdf.get_string_width(line) <= pdf.epw:
                pdf.cell(0, height, line, new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.multi_cell(0, height, line, new_x="LMARGIN", new_y="NEXT")

    def cover(self, facts: list[tuple[str, str]], scope: dict[str, Any], counts: dict[str, int]) -> None:
        """Page 1: who asked for what, when, and what the package holds."""
        self.pdf.add_page()
        self._line("Concordance legal export package", size=16, style="B", height=9)
        self._line(
            "A signed, self-verifying record of AI outputs, signed reports and their audit trail.", color=GREY
        )
        self.pdf.ln(4)
        for label, value in facts:
            self._line(f"{label}: {value}")
        self.pdf.ln(2)
        self._line("Scope", style="B", size=11, height=6)
        for key, value in sorted(scope.items()):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            self._line(f"{key}: {shown}")
        self.pdf.ln(2)
        self._line("Contents", style="B", size=11, height=6)
        for key, value in counts.items():
            self._line(f"{key}: {value}")
        self.pdf.ln(2)
        self._line(
            "Verify this package with the verify_package.py it contains: "
            "python verify_package.py PACKAGE.zip "
            "--public-key ORGANISATION_KEY.pem (see VERIFY.md). For each study the AI draft and the signed "
            "report are printed with the words that differ underlined in red, each difference is named, "
            "then the study's timeline follows.",
            color=GREY,
        )
        self.pdf.add_page()
        self._line("Studies", size=13, style="B", height=7)

    def study(self, timeline: StudyTimeline) -> None:
        """One study: its compared texts, then its timeline (engine differences in red)."""
        pdf = self.pdf
        if pdf.get_y() > 250:
            pdf.add_page()
        pdf.ln(2)
        accession = timeline.accession or "(no accession number)"
        self._line(f"Study {accession}  {timeline.description}", size=10, style="B", height=5)
        for pair in timeline.pairs:
            self._pair(pair)
        self._line("Timeline", size=8.5, style="B", height=4.5)
        self._timeline(timeline.entries)

    def _pair(self, pair: ComparedPair) -> None:
        self._line(pair.heading, size=8.5, color=GREY, height=4.2)
        for text in (pair.draft, pair.report):
            self._marked(text)
        if pair.differences:
            self._line("Differences", size=8.5, style="B", height=4.5)
        for n, x in enumerate(pair.differences, 1):
            self._line(f"{n}. {x.category} ({x.significance}): {x.finding}", size=8.5, color=RED, height=4.2)
            self._line(f"    AI draft: {x.ai_words}   Signed report: {x.signed_words}", size=8, height=4)
            if x.explanation:
                self._line(f"    {x.explanation}", size=8, color=GREY, height=4)
        self.pdf.ln(1.5)

    def _marked(self, text: MarkedText) -> None:
        """A report text, monospaced and wrapped by character count, the marked words underlined in red."""
        pdf = self.pdf
        self._line(text.heading, size=8.5, style="B", height=4.5)
        full = safe("".join(piece for piece, _ in text.pieces), limit=100_000)
        marked = bytearray()
        for piece, is_marked in text.pieces:
            marked += (b"\x01" if is_marked else b"\x00") * len(safe(piece, limit=100_000))
        width = _TEXT_PT * 0.6 * _MM_PER_PT
        for start, end in wrap_offsets(full, _TEXT_COLUMNS):
            line = full[start:end]
            for run_start, run_end in _runs(marked, start, end):
                run = line[run_start - start : run_end - start]
                is_marked = bool(marked[run_start])
                self._font(MONO, line, style="U" if is_marked else "", size=_TEXT_PT)
                pdf.set_text_color(*(RED if is_marked else BLACK))
                pdf.cell(width * len(run), 3.9, run)
            pdf.ln(3.9)
        pdf.ln(1.5)
        if text.shortened:
            self._line("(shortened here; the full text is in records/)", size=7.5, color=GREY, height=3.8)

    def _timeline(self, entries: list[TimelineEntry]) -> None:
        """Timelines are monospaced and wrap by character count: fpdf2's proportional line breaking
        measures every character again for each candidate break, which dominated the build time of
        large scopes."""
        pdf = self.pdf
        for entry in entries:
            pdf.set_text_color(*(RED if entry.highlight else BLACK))
            prefix = "! " if entry.highlight else "  "
            text = safe(f"{prefix}{entry.when + '  ' if entry.when else ''}{entry.what}")
            self._font(MONO, text, size=7.5)
            for line in textwrap.wrap(text, _MONO_COLUMNS, subsequent_indent="      ") or [""]:
                pdf.cell(0, 3.6, line, new_x="LMARGIN", new_y="NEXT")

    def custody(self, entries: list[tuple[str, str]]) -> None:
        """The chain-of-custody page."""
        self.pdf.add_page()
        self._line("Chain of custody", size=13, style="B", height=7)
        for label, value in entries:
            self._line(label, style="B")
            self._line(value, color=GREY)
            self.pdf.ln(1)

    def output(self) -> bytes:
        """The finished PDF."""
        return bytes(self.pdf.output())


def wrap_offsets(text: str, width: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` of each printed line of ``text``: its own line breaks kept, long lines broken
    after the last space that fits (a word longer than ``width`` is cut), trailing spaces dropped."""
    position = 0
    for paragraph in text.split("\n"):
        start, end = position, position + len(paragraph)
        position = end + 1
        if start == end:
            yield start, start
        while start < end:
            stop = min(start + width, end)
            if stop < end:
                space = text.rfind(" ", start + 1, stop + 1)
                stop = space if space > start else stop
            yield start, len(text[start:stop].rstrip()) + start
            start = stop
            while start < end and text[start] == " ":
                start += 1


def _runs(marked: bytearray, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The stretches of ``[start, end)`` that are all marked or all unmarked."""
    run = start
    for i in range(start + 1, end + 1):
        if i == end or marked[i] != marked[run]:
            yield run, i
            run = i
