"""Browser tests: Debian's Chromium (headless, through Playwright) against a live server and a real worker.

Fixtures and helpers for every e2e test:

* ``portal``: the live server's base URL, with a real Celery worker process running on the test
  database (``celery_worker_process`` from tests/conftest.py). Tests using it are
  ``@pytest.mark.e2e`` and ``@pytest.mark.django_db(transaction=True)`` (the worker and the server
  thread must see what the test commits).
* ``users``: every persona of tests/conftest.py with the password ``PASSWORD`` (fast MD5 hashing).
* ``page``: a fresh browser context and page on the live server; ``page.csp_violations`` collects
  the Content-Security-Policy violations Chromium reports on the console, ``page.errors`` the
  uncaught script errors.

Helpers (tests/e2e/browser.py): ``login_as(page, persona)`` signs in through the login form, as a
person would; ``shoot(page, name)`` saves a full-page screenshot as docs/screenshots/<name>.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.accounts.helpers import PASSWORD

CHROMIUM = os.environ.get("CONCORDANCE_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 20_000


def _playwright_sync():
    """Playwright's sync API, imported when a browser test runs (the rest of the suite does without)."""
    from playwright.sync_api import sync_playwright

    return sync_playwright


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the whole run (Debian's, not a downloaded build)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM}: run .ci/ensure-chromium (make test does), or install it"
            " as root with apt-get install -y chromium"
        )
    # Playwright's sync API keeps an event loop in this thread; Django refuses ORM calls from a thread
    # with a running loop unless told that this synchronous use is intended (test code only).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = _playwright_sync()().start()
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield chromium
    chromium.close()
    playwright.stop()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def e2e_signing_key(tmp_path_factory) -> Iterator[Path]:
    """A throwaway audit signing key for the server and the worker (they sign and verify checkpoints).

    Set in the environment before the worker starts (it reads its own settings) and in this process's
    settings for the live server thread.
    """
    from django.conf import settings

    from audit import checkpoints

    path = tmp_path_factory.mktemp("e2e-keys") / "audit-signing-key.pem"
    names = ("AUDIT_SIGNING_KEY_FILE", "AUDIT_SIGNING_KEY_CREATE")
    saved_env = {name: os.environ.get(name) for name in names}
    saved_settings = (settings.AUDIT_SIGNING_KEY_FILE, settings.AUDIT_SIGNING_KEY_CREATE)
    os.environ.update({"AUDIT_SIGNING_KEY_FILE": str(path), "AUDIT_SIGNING_KEY_CREATE": "1"})
    settings.AUDIT_SIGNING_KEY_FILE, settings.AUDIT_SIGNING_KEY_CREATE = path, True
    checkpoints._signing_key.cache_clear()
    yield path
    checkpoints._signing_key.cache_clear()
    settings.AUDIT_SIGNING_KEY_FILE, settings.AUDIT_SIGNING_KEY_CREATE = saved_settings
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def celery_worker_process(e2e_signing_key, celery_worker_process):
    """The real worker of tests/conftest.py, started after the signing key is in its environment."""
    return celery_worker_process


@pytest.fixture
def portal(live_server, celery_worker_process) -> str:
    """The base URL of the live portal, with a real worker running beside it."""
    return live_server.url


@pytest.fixture
def users(personas, settings):
    """Every persona with the password ``PASSWORD``; an extra ``root`` holds the admin role."""
    from django.contrib.auth.models import Group

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    root = personas["eve"].__class__.objects.create_user(username="root")
    root.groups.add(Group.objects.get_or_create(name="admin")[0])
    everyone = {**personas, "root": root}
    for user in everyone.values():
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
    return everyone


@pytest.fixture
def page(browser, portal) -> Iterator[object]:
    """A fresh context (no cookies) and page on the live portal, recording CSP violations."""
    context = browser.new_context(base_url=portal, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.csp_violations = []
    tab.errors = []

    def on_console(message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            tab.csp_violations.append(f"{tab.url}: {message.text}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: tab.errors.append(f"{tab.url}: {error}"))
    yield tab
    context.close()

