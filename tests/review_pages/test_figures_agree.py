"""One set of figures: queue, case, dashboard, performance page, CSV and PDF say the same, say when they
were computed, and show a review as soon as it is submitted. PDFs print names in any script.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.utils import timezone
from pypdf import PdfReader

from audit.log import SYSTEM
from portal.review import services
from portal.review.exports import HEADER, performance_pdf
from portal.review.selectors import PerformanceRow

pytestmark = pytest.mark.django_db

NAMES = {
    "greek": ("Ελένη", "Παπαδοπούλου"),
    "cyrillic": ("Людмила", "Жукова"),
    "polish": ("Małgorzata", "Żółkiewska-Łęcka"),
    "vietnamese": ("Nguyễn", "Thị Ngọc Ánh"),
}


def _review(case, reviewer, *, radpeer: str, side: str):
    verdicts = {d.pk: services.VerdictInput("agree", correct_side=side) for d in case.discrepancies.all()}
    return services.review_submit(
        comparison=case, reviewer=reviewer, radpeer=radpeer, comment="", verdicts=verdicts, context=SYSTEM
    )


@pytest.fixture
def reviewed(make_case, personas, django_capture_on_commit_callbacks):
    """Three of alice's cases from today: one where she erred (3b), one where the AI did, one unreviewed.
    Reviews go through the service with on-commit callbacks run: no manual refresh of the figures.
    """
    when = timezone.now() - dt.timedelta(hours=2)
    cases = [make_case(personas["alice"], when=when + dt.timedelta(minutes=i)) for i in range(3)]
    services.daily_stats_refresh()
    with django_capture_on_commit_callbacks(execute=True):
        _review(cases[0], personas["carol"], radpeer="3b", side="ai_draft")
    with django_capture_on_commit_callbacks(execute=True):
        _review(cases[1], personas["carol"], radpeer="", side="signed_report")
    return cases


def _alice_cells_from_page(html: str) -> list[str]:
    row = re.search(r'<tr data-testid="performance-row"[^>]*>(.*?)</tr>', html, re.S).group(1)
    return re.findall(r"<td>(.*?)</td>", row)


def test_figures_agree_across_pages_and_exports(page_for, reviewed, personas):
    chair = page_for("dana")
    page = chair.get("/review/performance/?period=30").content.decode()
    rows = list(csv.reader(io.StringIO(chair.get("/review/performance.csv?period=30").content.decode())))
    pdf_text = "".join(
        p.extract_text()
        for p in PdfReader(io.BytesIO(chair.get("/review/performance.pdf?period=30").content)).pages
    )
    dashboard = chair.get("/review/dashboard/?period=30").content.decode()
    queue = chair.get("/review/queue/?status=reviewed").content.decode()
    case = chair.get(f"/review/cases/{reviewed[0].pk}/").content.decode()

    page_cells = _alice_cells_from_page(page)
    assert rows[0] == list(HEADER)  # a plain table: the header first, no title above it
    assert rows[1] == page_cells
    column = dict(zip(HEADER, page_cells, strict=True))
    # Right after the reviews, without the periodic refresh: 2 reviewed, 1 her error, 1 the AI's.
    assert (column["cases compared"], column["committee reviews"]) == ("3", "2")
    assert (
        column["radiologist erred"],
        column["RADPEER 3b"],
        column["AI errors (model's, not counted)"],
    ) == (
        "1",
        "1",
        "1",
    )
    assert column["major (2b+3b) rate"] == "50.0%"
    for value in (column["major (2b+3b) rate"], column["significant rate"], column["radiologist"]):
        assert value in pdf_text
    assert (
        'data-testid="dash-reviewed">2' in dashboard
        and 'data-testid="dash-radiologist-errors">1' in dashboard
    )
    assert 'data-testid="queue-total"><strong>2</strong> cases match' in queue
    assert "RADPEER <strong>3b</strong>" in case and "the signed report erred" in case
    for html in (page, dashboard):
        assert 'data-testid="as-of"' in html and "<time datetime=" in html
    assert "figures as of" in pdf_text


@pytest.mark.parametrize("script", sorted(NAMES))
def test_the_pdf_prints_names_in_any_script_and_reads_them_back(script):
    first, last = NAMES[script]
    row = PerformanceRow(
        1, f"{first} {last}", compared=4, reviewed=2, radpeer=dict.fromkeys(("1", "2a", "2b", "3a", "3b"), 0)
    )

    pdf = performance_pdf([row], dt.date(2026, 1, 1), dt.date(2026, 6, 30), as_of=timezone.now())

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert first in text and last in text
    assert "?" not in text.split("OPPE/FPPE", 1)[1].split("Studies from", 1)[0]
    assert b"/FontFile2" in pdf  # the TrueType font is embedded: nothing to download, nothing substituted


def test_the_pdf_header_titles_do_not_overlap():
    """Each header title is wrapped inside its own column: every word of it is read back whole."""
    pdf = performance_pdf([], dt.date(2026, 1, 1), dt.date(2026, 6, 30), as_of=None)

    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for title in HEADER:
        for word in title.replace("(", " ").replace(")", " ").split():
            assert word in text, word
