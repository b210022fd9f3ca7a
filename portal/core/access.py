"""Access denial: every refusal is an audit event (``access.denied``) before the 4xx answer.

Which accounts may do what is decided by :mod:`portal.accounts.roles`; this module only records and
answers a refusal, the same way for pages, middleware and the API.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse

from audit import log as audit

View = Callable[..., HttpResponse]


def record_denial(request: Any, *, reason: str) -> None:
    """Write the ``access.denied`` event for ``request``: who tried what, from where, and why not.

    An unauthenticated caller is recorded without an actor (as the API always has).
    """
    user = getattr(request, "user", None)
    actor = user if user is not None and user.is_authenticated else None
    with transaction.atomic():
        audit.record(
            "access.denied",
            actor=actor,
            context=audit.AuditContext.from_request(request),
            details={"reason": reason},
        )


def deny(request: Any, *, reason: str, not_found: bool = False, message: str = "") -> NoReturn:
    """Audit a refusal, then refuse: 403, or 404 where even the existence of the thing is private."""
    record_denial(request, reason=reason)
    if not_found:
        raise Http404
    raise PermissionDenied(message) if message else PermissionDenied


def require(check: Callable[[Any], bool], *, reason: str) -> Callable[[View], View]:
    """A view decorator: refuse (audited 403, see :func:`deny`) unless ``check(request.user)``.

    For views of rooms that cannot ask :mod:`portal.accounts.roles` themselves; the project's URL
    configuration applies it with the right check.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.user):
                deny(request, reason=reason)
            return view(request, *args, **kwargs)

        return guarded

    return decorate
