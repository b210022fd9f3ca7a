"""Where a signed-in session stands with the second factor (TOTP), kept in the session itself.

The state is decided once, when the password step succeeds (``user_logged_in``), so the middleware
that enforces it costs no query per request:

* ``None``: nothing to do (no device, and no role that requires one; or the code was given);
* ``VERIFY``: the user has a confirmed TOTP device and must enter a code from it;
* ``ENROL``: the user's role requires a second factor and no device is confirmed yet.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.core import checks
from django.dispatch import receiver
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts import roles

SESSION_KEY = "concordance_second_factor"
VERIFY = "verify"
ENROL = "enrol"
DONE = "done"


def step_for(user: Any) -> str | None:
    """The second-factor step ``user`` must complete after the password (None when there is none)."""
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return VERIFY
    if roles.must_use_second_factor(user, settings.CONCORDANCE_REQUIRE_OTP_ROLES):
        return ENROL
    return None


def pending_step(request: HttpRequest) -> str | None:
    """The step this session still owes, if any (sessions from before this feature are assessed once)."""
    state = request.session.get(SESSION_KEY)
    if state is None:
        state = step_for(request.user) or DONE
        request.session[SESSION_KEY] = state
    return None if state == DONE else state


def mark_done(request: HttpRequest) -> None:
    """Record that this session completed its second factor."""
    request.session[SESSION_KEY] = DONE


@receiver(user_logged_in, dispatch_uid="concordance-second-factor-state")
def _assess_at_login(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = step_for(user) or DONE


@checks.register(checks.Tags.security)
def check_required_roles(app_configs: Any = None, **_: Any) -> list[checks.CheckMessage]:
    """A misspelt role in CONCORDANCE_REQUIRE_OTP_ROLES would silently require nothing: refuse it."""
    unknown = [
        name for name in settings.CONCORDANCE_REQUIRE_OTP_ROLES if name not in roles.Role._value2member_map_
    ]
    if not unknown:
        return []
    return [
        checks.Error(
            f"CONCORDANCE_REQUIRE_OTP_ROLES names unknown roles: {', '.join(unknown)}",
            hint=f"Use role names from: {', '.join(role.value for role in roles.Role)}",
            id="accounts.E001",
        )
    ]
