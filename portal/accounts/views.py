"""Sign-in pages beyond Django's own: the second factor (enrol, verify) and the session's keep-alive.

Every page here answers with ``Cache-Control: no-store``: they show secrets (the TOTP key) or
session state that must not outlive the session in a shared browser's cache.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit import log as audit
from portal.accounts import second_factor, services
from portal.accounts.sessions import LAST_ACTIVITY_KEY


def _safe_next(request: HttpRequest) -> str:
    """Where to go after the second factor: a local path from ``next``, else the landing page."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return settings.LOGIN_REDIRECT_URL


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def otp_setup(request: HttpRequest) -> HttpResponse:
    """Enrol a TOTP authenticator: show the secret (text and otpauth URI), confirm with a first code."""
    context = audit.AuditContext.from_request(request)
    has_device = TOTPDevice.objects.filter(user=request.user, confirmed=True).exists()
    if has_device:
        return render(request, "registration/otp_setup.html", {"enrolled": True})
    error = ""
    if request.method == "POST":
        try:
            device = services.totp_device_confirm(
                user=request.user, token=request.POST.get("token"), context=context
            )
        except services.InvalidToken as exc:
            error = str(exc)
        else:
            otp_login(request, device)
            second_factor.mark_done(request)
            messages.success(request, "Two-step sign-in is now on for your account.")
            return redirect(_safe_next(request))
    device = services.totp_device_start(user=request.user, context=context)
    secret = base64.b32encode(device.bin_key).decode("ascii")
    return render(
        request,
        "registration/otp_setup.html",
        {
            "enrolled": False,
            # Groups of four, as authenticator apps show them, so that typing it in is less error-prone.
            "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
            "config_url": device.config_url,
            "error": error,
            "next": _safe_next(request),
            "required": second_factor.pending_step(request) == second_factor.ENROL,
        },
        status=400 if error else 200,
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def otp_verify(request: HttpRequest) -> HttpResponse:
    """The step after the password for users with a confirmed device: enter the current code."""
    if second_factor.pending_step(request) != second_factor.VERIFY:
        return redirect(_safe_next(request))
    error = ""
    if request.method == "POST":
        try:
            device = services.second_factor_verify(
                user=request.user,
                token=request.POST.get("token"),
                context=audit.AuditContext.from_request(request),
            )
        except services.InvalidToken as exc:
            error = str(exc)
        else:
            otp_login(request, device)
            second_factor.mark_done(request)
            # A new session key once fully signed in, as after the password step.
            request.session.cycle_key()
            return redirect(_safe_next(request))
    return render(
        request,
        "registration/otp_verify.html",
        {"error": error, "next": _safe_next(request)},
        status=400 if error else 200,
    )


@never_cache
@require_POST
def session_keepalive(request: HttpRequest) -> HttpResponse:
    """ "Stay signed in": a request the user made, so the idle middleware has already counted it."""
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "Not signed in."}, status=401)
    return HttpResponse(status=204)


@never_cache
@require_GET
def session_status(request: HttpRequest) -> HttpResponse:
    """Seconds left before automatic logoff (the countdown asks before it leaves the page).

    The countdown sends it as a background request, which does not count as activity.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"remaining_s": 0, "authenticated": False})
    last = request.session.get(LAST_ACTIVITY_KEY, time.time())
    remaining = max(0, int(settings.CONCORDANCE_IDLE_TIMEOUT_S - (time.time() - float(last))))
    return JsonResponse({"remaining_s": remaining, "authenticated": True})


def when_oidc(view_class: Any) -> Callable[..., HttpResponse]:
    """A mozilla-django-oidc view that answers 404 while no OpenID Connect provider is configured.

    The view is built at the first request (it reads the provider's settings when constructed).
    """

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not getattr(settings, "OIDC_RP_CLIENT_ID", ""):
            raise Http404
        return view_class.as_view()(request, *args, **kwargs)

    return never_cache(view)
