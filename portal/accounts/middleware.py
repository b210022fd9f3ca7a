"""Session safeguards that run on every request: automatic logoff when idle, and the second factor.

Both are server-side: the countdown in static/portal/session.js only warns the user, it enforces nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY, load_backend, logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse

from audit import log as audit
from portal.accounts import directory, roles, second_factor
from portal.accounts.sessions import LAST_ACTIVITY_KEY
from portal.core.access import deny

# Requests a page makes on its own (progress polling, the session check) send this header; they must
# not count as activity, or an open progress bar would keep an unattended session alive for ever.
BACKGROUND_HEADER = "HTTP_X_CONCORDANCE_BACKGROUND"
IDLE_MESSAGE = "You were signed out after a period of inactivity."
DIRECTORY_CHECK_KEY = "concordance_directory_checked"
DIRECTORY_MESSAGES = {
    "gone": "Your account is no longer enabled in the hospital's directory.",
    "unreachable": "The hospital's directory could not confirm your account. Please sign in again.",
}


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def _is_static(request: HttpRequest) -> bool:
    return request.path_info.startswith(settings.STATIC_URL)


class IdleTimeoutMiddleware:
    """Log a signed-in user out once ``CONCORDANCE_IDLE_TIMEOUT_S`` seconds pass without activity.

    The time of the last request the user made is kept in the session. A request arriving after the
    timeout ends the session (audited as ``auth.idle_logout``) and carries on as anonymous, so pages
    redirect to the login page and the API answers 401/403. HTMX requests get an ``HX-Redirect``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_static(request) or not request.user.is_authenticated or not hasattr(request, "session"):
            return self.get_response(request)
        now = time.time()
        last = request.session.get(LAST_ACTIVITY_KEY)
        timeout = settings.CONCORDANCE_IDLE_TIMEOUT_S
        if isinstance(last, int | float) and now - last > timeout:
            return self._log_out(request, idle_s=int(now - last))
        if not request.META.get(BACKGROUND_HEADER) or last is None:
            request.session[LAST_ACTIVITY_KEY] = now
        return self.get_response(request)

    def _log_out(self, request: HttpRequest, *, idle_s: int) -> HttpResponse:
        with transaction.atomic():
            audit.record(
                "auth.idle_logout",
                actor=request.user,
                context=audit.AuditContext.from_request(request),
                details={"idle_seconds": idle_s, "timeout_seconds": settings.CONCORDANCE_IDLE_TIMEOUT_S},
            )
        logout(request)
        if _is_api(request):
            return self.get_response(request)
        messages.info(request, IDLE_MESSAGE)
        if request.META.get(BACKGROUND_HEADER):
            # The countdown's own check: answer it (it then reloads the page, which shows the message).
            return JsonResponse({"authenticated": False, "remaining_s": 0}, status=401)
        if request.path == settings.LOGIN_URL:
            return self.get_response(request)
        login_url = f"{settings.LOGIN_URL}?{urlencode({'next': request.path})}"
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = login_url
            return response
        if request.method == "GET":
            return HttpResponseRedirect(login_url)
        # A form posted into an expired session is not replayed after login: the data may be stale.
        return HttpResponseRedirect(settings.LOGIN_URL)


def _signed_out_answer(
    request: HttpRequest, get_response: Callable[[HttpRequest], HttpResponse]
) -> HttpResponse:
    """After a forced logout: the API carries on as anonymous; pages go to the login page."""
    if _is_api(request) or request.path == settings.LOGIN_URL:
        return get_response(request)
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = settings.LOGIN_URL
        return response
    return HttpResponseRedirect(settings.LOGIN_URL)


class DirectoryRevalidationMiddleware:
    """Re-check a directory session with the directory, so that a leaver loses access at once.

    Sessions signed in through a backend that can ``revalidate`` (LDAP) are re-checked on a request
    once ``CONCORDANCE_DIRECTORY_RECHECK_S`` seconds have passed since the last check (0: every
    request). Disabled or removed in the directory: the account is switched off and every session of
    it ends; directory unreachable: this session ends (fail closed) and the account stays on. Both are
    audited. OpenID Connect sessions are re-checked with the provider by mozilla-django-oidc's
    SessionRefresh middleware instead.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_static(request) or not request.user.is_authenticated or not hasattr(request, "session"):
            return self.get_response(request)
        backend_path = request.session.get(BACKEND_SESSION_KEY, "")
        if backend_path not in settings.AUTHENTICATION_BACKENDS:
            return self.get_response(request)
        backend = load_backend(backend_path)
        if not hasattr(backend, "revalidate"):
            return self.get_response(request)
        now = time.time()
        last = request.session.get(DIRECTORY_CHECK_KEY)
        if isinstance(last, int | float) and now - last < settings.CONCORDANCE_DIRECTORY_RECHECK_S:
            return self.get_response(request)
        context = audit.AuditContext.from_request(request)
        verdict = str(backend.revalidate(request.user, context=context))
        if verdict == "active":
            request.session[DIRECTORY_CHECK_KEY] = now
            return self.get_response(request)
        user = request.user
        if verdict == "gone":
            directory.directory_disabled(user, reason="disabled or removed in the directory", context=context)
        else:
            with transaction.atomic():
                audit.record("auth.directory_unreachable", actor=user, context=context)
        logout(request)
        if not _is_api(request):
            messages.warning(request, DIRECTORY_MESSAGES.get(verdict, DIRECTORY_MESSAGES["unreachable"]))
        return _signed_out_answer(request, self.get_response)


class SecondFactorMiddleware:
    """Hold a signed-in user at the second-factor step until it is done.

    A user with a confirmed TOTP device must enter a code after the password; a user whose role
    requires a second factor (``CONCORDANCE_REQUIRE_OTP_ROLES``) and has no device must enrol one.
    Until then only the verification, enrolment and logout pages (and static files) answer.
    API calls with a token are not affected (service accounts; DRF authenticates them after this).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_static(request) or not request.user.is_authenticated:
            return self.get_response(request)
        pending = second_factor.pending_step(request)
        if pending is None:
            return self.get_response(request)
        target = reverse("otp-verify" if pending == second_factor.VERIFY else "otp-setup")
        exempt = {target, reverse("logout"), reverse("login")}
        if request.path in exempt:
            return self.get_response(request)
        if _is_api(request):
            return JsonResponse({"detail": "A second authentication factor is required."}, status=403)
        if request.method == "GET" and not request.headers.get("HX-Request"):
            # The path only: query strings are never carried along (they could hold search terms).
            return HttpResponseRedirect(f"{target}?{urlencode({'next': request.path})}")
        response = HttpResponseRedirect(target)
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = target
        return response


class ApiOnlyAccountsMiddleware:
    """Service accounts (RIS, PACS, model servers) are API only: a signed-in one gets 403 on pages.

    Which accounts those are is decided by :func:`portal.accounts.roles.is_api_only`; the refusal is
    audited like every other denial. The sign-in pages stay open so that such a session can end.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            _is_static(request)
            or _is_api(request)
            or not request.user.is_authenticated
            or request.path.startswith("/accounts/")
            or not roles.is_api_only(request.user)
        ):
            return self.get_response(request)
        deny(request, reason="api_only_account", message="This account may use the API only.")
