"""Fixtures for the sign-in tests: personas with passwords (hashed fast) and a TOTP code helper."""

from __future__ import annotations

import pytest

from tests.accounts.helpers import PASSWORD


@pytest.fixture
def fast_hasher(settings):
    """MD5 hashing for test passwords: PBKDF2 would cost a second per login on this machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def with_passwords(personas, fast_hasher):
    """Every persona, each with the password ``PASSWORD``."""
    for user in personas.values():
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
    return personas
