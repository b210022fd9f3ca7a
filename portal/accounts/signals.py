"""Sign-in hooks: lockouts into the audit log (failed logins are audited by audit.signals), and the
idle clock started at login."""

from __future__ import annotations

import time
from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest

from audit import log as audit
from portal.accounts.sessions import LAST_ACTIVITY_KEY, LOGIN_ADDRESS_KEY, LOGIN_AT_KEY


@receiver(user_locked_out, dispatch_uid="concordance-audit-lockout")
def _locked_out(
    sender: Any,
    request: HttpRequest | None,
    username: str | None = None,
    ip_address: str | None = None,
    **_: Any,
) -> None:
    # The attempted username is kept, as for failed logins: it is how password guessing shows up.
    with transaction.atomic():
        audit.record(
            "auth.lockout",
            actor=None,
            context=audit.AuditContext.from_request(request),
            details={"username": str(username or "")[:150]},
        )


@receiver(user_logged_in, dispatch_uid="concordance-idle-clock")
def _start_idle_clock(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    # Signing in is activity: without this the clock would start only at the next request.
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[LAST_ACTIVITY_KEY] = now
        # When and from where the session signed in: what an admin sees in the list of sessions.
        request.session[LOGIN_AT_KEY] = now
        request.session[LOGIN_ADDRESS_KEY] = str(request.META.get("REMOTE_ADDR", ""))[:64]
