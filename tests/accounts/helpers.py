"""Helpers shared by the sign-in tests and the browser tests: the test password and TOTP codes."""

from __future__ import annotations

import time

PASSWORD = "correct horse battery staple"


def totp_code(device, *, offset_steps: int = 0) -> str:
    """The code ``device`` shows now (or ``offset_steps`` steps later), as an authenticator app would."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


def confirmed_device(user):
    """A confirmed TOTP device for ``user`` (as if enrolled earlier)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
