"""The review pages: QA queue, case and adjudication, sampling campaigns, dashboard, feedback, summaries.

Thin: each view asks :mod:`portal.accounts.roles` first (refusals are audited), validates with a form,
reads through :mod:`portal.review.selectors` and writes through :mod:`portal.review.services`.
HTMX requests (``HX-Request``) get the partial the page swaps in; plain requests get the whole page,
so every page also works without JavaScript (both answers say ``Vary: HX-Request``).
"""

from portal.review.views.case import adjudicate, case
from portal.review.views.figures import (
    dashboard,
    feedback_acknowledge,
    my_feedback,
    performance,
    performance_csv,
    performance_pdf_view,
)
from portal.review.views.queue import assign, campaigns, my_assigned, queue

__all__ = [
    "adjudicate",
    "assign",
    "campaigns",
    "case",
    "dashboard",
    "feedback_acknowledge",
    "my_assigned",
    "my_feedback",
    "performance",
    "performance_csv",
    "performance_pdf_view",
    "queue",
]
