"""Domain errors of the review workflow; they share the record errors' base, so the API maps them too."""

from __future__ import annotations

from portal.core.errors import InvalidRecord, RecordError, RecordNotFound


class InvalidReview(InvalidRecord):
    """An adjudication, assignment or campaign that breaks a rule (bad score, unknown reviewer...)."""


class ReviewForbidden(RecordError):
    """The account may not do this to this case (e.g. score a report it signed itself)."""

    status = 403
    code = "forbidden"


class CaseNotFound(RecordNotFound):
    """No such case, or one the account may not know exists."""
