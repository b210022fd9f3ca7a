"""What every review page shares: refusals (audited), the HTMX switch, labels, periods and rates."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from audit import log as audit
from portal.review.forms import QueueFilterForm
from portal.review.models import Comparison
from portal.review.pseudonyms import clinician_pseudonym, display_name, pseudonym

User = get_user_model()

PERIODS = {"30": 30, "90": 90, "180": 180, "365": 365, "730": 730}


def deny(request: HttpRequest, *, reason: str, not_found: bool = False) -> None:
    """Audit a refusal, then refuse: 403, or 404 where even the existence of the thing is private."""
    with transaction.atomic():
        audit.record(
            "access.denied",
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            details={"reason": reason},
        )
    if not_found:
        raise Http404
    raise PermissionDenied


def is_htmx(request: HttpRequest) -> bool:
    """Whether HTMX asked for a partial to swap in. A history restore (Back to a page HTMX no longer
    holds in its cache) also says ``HX-Request`` but replaces the whole page, so it gets the page.
    """
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render_page_or_partial(
    request: HttpRequest, page: str, partial: str, context: dict, *, status: int = 200
) -> HttpResponse:
    """The partial for HTMX, the page otherwise; both say ``Vary: HX-Request`` so that a cache (or the
    browser's history, on Back) never serves the bare fragment for the page's address.
    """
    response = render(request, partial if is_htmx(request) else page, context, status=status)
    patch_vary_headers(response, ["HX-Request", "HX-History-Restore-Request"])
    return response


def radiologist_label(comparison: Comparison, reveal: bool) -> str:
    """Who signed the case as this viewer may see it: the name for the chair, else a pseudonym.

    A reader known only from the clinician directory (no account linked) appears by the directory's
    name for the chair, and by a pseudonym of the clinician for everyone else.
    """
    if comparison.radiologist_id is not None:
        if reveal:
            user = comparison.radiologist
            return display_name(
                user.pk, full_name=user.get_full_name(), username=user.get_username(), reveal=True
            )
        return pseudonym(comparison.radiologist_id)
    if comparison.clinician_id is None:
        return pseudonym(None)
    if reveal:
        return f"{comparison.clinician.display_name} (no account linked)"
    return clinician_pseudonym(comparison.clinician_id)


def queue_state(params: QueryDict) -> QueryDict:
    """The queue's filters and sort from a query string, without the page cursor (for case links)."""
    state = QueryDict(mutable=True)
    for name in QueueFilterForm.base_fields:
        if name != "cursor" and params.get(name):
            state[name] = params[name][:256]
    return state


def period_of(request: HttpRequest) -> tuple[str, dt.date, dt.date]:
    """The period a figures page shows (``?period=`` days, 180 unless one of :data:`PERIODS`)."""
    key = request.GET.get("period", "180")
    if key not in PERIODS:
        key = "180"
    end = timezone.localdate()
    return key, end - dt.timedelta(days=PERIODS[key] - 1), end


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, or None without a whole."""
    return part / whole if whole else None


def percent(value: float | None) -> str:
    """A rate as "12.3%" ("-" when there is none)."""
    return "-" if value is None else f"{value * 100:.1f}%"
