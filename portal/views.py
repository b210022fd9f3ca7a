"""The landing page: it belongs to no single app (it counts records and comparisons)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts import roles
from portal.records import selectors
from portal.review.selectors import comparison_counts


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The landing page: what the record holds, as far as this user may see it."""
    return render(
        request,
        "portal/home.html",
        {
            "counts": selectors.record_counts(request.user),
            "comparisons": comparison_counts(request.user),
            "roles": sorted(role.value for role in roles.roles_of(request.user)),
            "can_view_audit_status": roles.can_view_audit_status(request.user),
        },
    )
