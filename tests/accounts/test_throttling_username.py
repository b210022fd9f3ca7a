"""The name sign-in throttling records must fit its column whatever a hostile form posts."""

from django.test import RequestFactory

from portal.accounts.throttling import USERNAME_MAX_LENGTH, axes_username


def test_it_clips_an_oversized_name_to_the_longest_real_name():
    request = RequestFactory().post("/accounts/login/", {"username": "a" * 10_000})

    assert axes_username(request) == "a" * USERNAME_MAX_LENGTH


def test_it_drops_nul_and_prefers_the_credentials_given():
    request = RequestFactory().post("/accounts/login/", {"username": "mallory"})

    assert axes_username(request, {"username": "ali\x00ce"}) == "alice"


def test_it_returns_nothing_for_a_missing_or_non_text_name():
    request = RequestFactory().post("/accounts/login/", {})

    assert axes_username(request) is None
    assert axes_username(request, {"username": ["alice"]}) is None
