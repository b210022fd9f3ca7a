"""Fixtures for the administration pages: an admin ("root") and page clients signed in as personas."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """MD5 hashing: PBKDF2 would cost a second per created password on this machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def root(personas) -> User:
    """The admin persona (alongside every other persona)."""
    user = User.objects.create_user(username="root")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    return user


@pytest.fixture
def admin_client(root) -> Client:
    """A page client signed in as the admin."""
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def page_as(personas):
    """``page_as("bob")``: a page client signed in as that persona."""

    def build(name: str) -> Client:
        client = Client()
        client.force_login(personas[name])
        return client

    return build
