"""Helpers for the browser tests: sign in as a persona, take a screenshot for the docs."""

from __future__ import annotations

from pathlib import Path

from tests.accounts.helpers import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def login_as(page, persona: str, password: str = PASSWORD) -> None:
    """Sign in through the login form and wait for the page after it."""
    page.goto("/accounts/login/")
    page.fill("#id_username", persona)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("[data-testid=login-submit]")


def shoot(page, name: str) -> Path:
    """Save a full-page screenshot as docs/screenshots/<name>.png (README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
