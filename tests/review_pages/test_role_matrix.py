"""Every review page against every persona: allowed, refused (403), hidden (404) or sent to log in.

Refusals and hidden cases are audited as ``access.denied``.
"""

from __future__ import annotations

import pytest

from audit.log import SYSTEM
from audit.models import AuditEvent
from portal.review import services
from portal.review.models import Feedback
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "bob", "carol", "dana", "lena", "otto", "ris", "eve", None]
COMMITTEE_READ = {"carol": 200, "dana": 200, "lena": 200, "otto": 200}
CHAIR_ONLY = {"dana": 200}

# (name, method, path template, data, expected status per persona; anyone not listed gets 403).
MATRIX = [
    ("queue", "get", "/review/queue/", None, COMMITTEE_READ),
    ("assign", "post", "/review/queue/assign/", "assign", {"dana": 302}),
    ("campaigns", "get", "/review/campaigns/", None, CHAIR_ONLY),
    ("case", "get", "/review/cases/{case}/", None, {**COMMITTEE_READ, "alice": 200, "bob": 404}),
    (
        "adjudicate",
        "post",
        "/review/cases/{case}/adjudicate/",
        "adjudicate",
        {"carol": 302, "dana": 302, "bob": 404},
    ),
    ("dashboard", "get", "/review/dashboard/", None, COMMITTEE_READ),
    ("feedback", "get", "/review/feedback/", None, {"alice": 200, "bob": 200}),
    ("acknowledge", "post", "/review/feedback/{feedback}/acknowledge/", None, {"alice": 302, "bob": 404}),
    ("performance", "get", "/review/performance/", None, CHAIR_ONLY),
    ("performance-csv", "get", "/review/performance.csv", None, CHAIR_ONLY),
    ("performance-pdf", "get", "/review/performance.pdf", None, CHAIR_ONLY),
]


@pytest.fixture
def world(case, personas):
    """Alice's case, reviewed by a third reviewer (rita) with feedback to alice."""
    verdicts = {
        d.pk: services.VerdictInput("agree", correct_side="ai_draft") for d in case.discrepancies.all()
    }
    services.review_submit(
        comparison=case,
        reviewer=make_user("rita", "qa_reviewer"),
        radpeer="2a",
        comment="",
        verdicts=verdicts,
        feedback_message="Look again at the apices.",
        context=SYSTEM,
    )
    return {"case": case, "feedback": Feedback.objects.get()}


def _data(kind, world, personas):
    if kind == "assign":
        return {"reviewer": personas["carol"].pk, "cases": [world["case"].pk]}
    if kind == "adjudicate":
        discrepancies = world["case"].discrepancies.all()
        return {
            "radpeer": "1",
            **{f"verdict_{d.pk}": "agree" for d in discrepancies},
            **{f"side_{d.pk}": "signed_report" for d in discrepancies},
        }
    return {}


@pytest.mark.parametrize(("name", "method", "path", "data", "expected"), MATRIX, ids=[m[0] for m in MATRIX])
@pytest.mark.parametrize("persona", PERSONAS, ids=[p or "anonymous" for p in PERSONAS])
def test_role_matrix(page_for, world, personas, persona, name, method, path, data, expected):
    url = path.format(case=world["case"].pk, feedback=world["feedback"].pk)
    denied_before = AuditEvent.objects.filter(action="access.denied").count()

    response = getattr(page_for(persona), method)(url, _data(data, world, personas))

    if persona is None:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        return
    status = expected.get(persona, 403)
    assert response.status_code == status, f"{persona} {method.upper()} {url}"
    if status in (403, 404):
        assert AuditEvent.objects.filter(action="access.denied").count() == denied_before + 1


@pytest.mark.parametrize(
    "path", ["/review/queue/", "/review/dashboard/", "/review/feedback/", "/review/campaigns/"]
)
def test_pages_refuse_writes_by_the_wrong_method(page_for, path):
    assert page_for("dana").delete(path).status_code == 405
