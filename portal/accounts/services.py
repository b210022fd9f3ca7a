"""Account workflows: enrolling a TOTP device and checking second-factor codes, each audited.

Codes are never stored or logged; the audit events say what happened, to whom, and from where.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit import log as audit

DEVICE_NAME = "Authenticator app"
TOKEN_PATTERN = re.compile(r"\d{6}")


class InvalidToken(ValueError):
    """The code is malformed, wrong, expired, replayed, or the device is throttled after failures."""


def normalise_token(raw: Any) -> str:
    """A six-digit code from what the user typed (spaces allowed); raises InvalidToken otherwise."""
    if not isinstance(raw, str):
        raise InvalidToken("Enter the six-digit code from your authenticator app.")
    token = raw.replace(" ", "").strip()
    if not TOKEN_PATTERN.fullmatch(token):
        raise InvalidToken("Enter the six-digit code from your authenticator app.")
    return token


@transaction.atomic
def totp_device_start(*, user: Any, context: audit.AuditContext) -> TOTPDevice:
    """The user's unconfirmed TOTP device, created (with a fresh secret) when there is none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
        audit.record(
            "auth.otp_enrolment_started",
            actor=user,
            context=context,
            object_type="otp_totp.totpdevice",
            object_id=device.pk,
        )
    return device


def totp_device_confirm(*, user: Any, token: Any, context: audit.AuditContext) -> TOTPDevice:
    """Confirm the user's pending TOTP device with a code from it; raises InvalidToken when wrong.

    A failure is audited and committed (the device's throttling counter must survive it too).
    """
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
        if device is None:
            raise InvalidToken("Start the enrolment again: no pending device.")
        ok = _verify(device, token)
        if ok:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        audit.record(
            "auth.otp_enrolled" if ok else "auth.otp_failed",
            actor=user,
            context=context,
            object_type="otp_totp.totpdevice",
            object_id=device.pk,
            details={} if ok else {"step": "enrol"},
        )
    if not ok:
        raise InvalidToken("That code is not right (or it has expired). Try the next one.")
    return device


def second_factor_verify(*, user: Any, token: Any, context: audit.AuditContext) -> TOTPDevice:
    """Check a code against the user's confirmed devices; the matching device, or InvalidToken.

    Every attempt is audited; repeated failures slow down through the device's own throttling.
    """
    with transaction.atomic():
        devices = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
        matched = next((device for device in devices if _verify(device, token)), None)
        audit.record(
            "auth.otp_verified" if matched else "auth.otp_failed",
            actor=user,
            context=context,
            object_type="otp_totp.totpdevice",
            object_id=matched.pk if matched else "",
            details={} if matched else {"step": "login"},
        )
    if matched is None:
        raise InvalidToken("That code is not right (or it has expired). Try the next one.")
    return matched


def _verify(device: TOTPDevice, token: Any) -> bool:
    """True when ``token`` is a valid, unused code of ``device`` and the device is not throttled."""
    try:
        clean = normalise_token(token)
    except InvalidToken:
        return False
    allowed, _ = device.verify_is_allowed()
    return bool(allowed) and bool(device.verify_token(clean))


@transaction.atomic
def second_factor_reset(*, user: Any, reason: str, context: audit.AuditContext, actor: Any = None) -> int:
    """Remove every TOTP device of ``user`` (a lost phone); the number removed. Audited with the reason.

    Sessions already past the second factor stay valid until they end; the next sign-in asks for a
    new enrolment when the user's role requires one.
    """
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ValueError("Give a reason (at most 500 characters).")
    removed, _ = TOTPDevice.objects.filter(user=user).delete()
    audit.record(
        "auth.otp_reset",
        actor=actor,
        context=context,
        object_type="auth.user",
        object_id=user.pk,
        details={"devices_removed": removed, "reason": reason},
    )
    return removed
