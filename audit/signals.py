"""Authentication events into the audit log: logins, logouts and failed logins (HIPAA 164.312(b))."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest

from audit import log


@receiver(user_logged_in)
def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    with transaction.atomic():
        log.record("auth.login", actor=user, context=log.AuditContext.from_request(request))


@receiver(user_logged_out)
def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    with transaction.atomic():
        log.record("auth.logout", actor=user, context=log.AuditContext.from_request(request))


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict, request: HttpRequest | None = None, **_: Any) -> None:
    # The attempted username is kept (it is how account-guessing shows up); the password never is.
    username = str(credentials.get("username", ""))[:150]
    with transaction.atomic():
        log.record(
            "auth.login_failed",
            actor=None,
            context=log.AuditContext.from_request(request),
            details={"username": username},
        )
