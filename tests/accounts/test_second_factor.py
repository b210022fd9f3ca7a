"""TOTP second factor (django-otp): enrolment, the step after the password, roles that require it."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tests.accounts.helpers import PASSWORD, confirmed_device, totp_code

pytestmark = pytest.mark.django_db


def _password_step(username: str, next_url: str = "") -> Client:
    client = Client()
    data = {"username": username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    client.post("/accounts/login/", data)
    return client


def test_without_a_device_the_password_is_enough(with_passwords):
    client = _password_step("alice")

    assert client.get("/").status_code == 200


def test_enrolment_shows_the_secret_as_text_and_as_an_otpauth_uri(with_passwords):
    client = _password_step("alice")

    page = client.get("/accounts/otp/setup/")

    device = TOTPDevice.objects.get(user__username="alice", confirmed=False)
    html = page.content.decode()
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    assert "otpauth://totp/Concordance%3Aalice?secret=" in html
    assert "<img" not in html  # no QR code image: the key is typed or pasted
    assert AuditEvent.objects.filter(action="auth.otp_enrolment_started", object_id=str(device.pk)).exists()


def test_reloading_the_enrolment_page_keeps_the_same_secret(with_passwords):
    client = _password_step("alice")
    client.get("/accounts/otp/setup/")
    client.get("/accounts/otp/setup/")

    assert TOTPDevice.objects.filter(user__username="alice").count() == 1


def test_a_right_code_confirms_the_device(with_passwords):
    client = _password_step("alice")
    client.get("/accounts/otp/setup/")
    device = TOTPDevice.objects.get(user__username="alice")

    response = client.post("/accounts/otp/setup/", {"token": totp_code(device)})

    device.refresh_from_db()
    assert response.status_code == 302 and response["Location"] == "/"
    assert device.confirmed
    assert AuditEvent.objects.filter(action="auth.otp_enrolled", actor_username="alice").count() == 1
    assert "Two-step sign-in is on" in client.get("/accounts/otp/setup/").content.decode()


@pytest.mark.parametrize(
    "token", ["000000x", "", "12345", "1234567", "<script>alert(1)</script>", "1" * 5000, "' OR 1=1 --"]
)
def test_a_wrong_or_malformed_code_confirms_nothing(with_passwords, token):
    client = _password_step("alice")
    client.get("/accounts/otp/setup/")
    device = TOTPDevice.objects.get(user__username="alice")
    wrong = token or f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"

    response = client.post("/accounts/otp/setup/", {"token": wrong})

    device.refresh_from_db()
    assert response.status_code == 400 and not device.confirmed
    assert "<script>alert(1)</script>" not in response.content.decode()
    assert AuditEvent.objects.filter(action="auth.otp_failed").count() == 1


def test_a_user_with_a_device_is_held_at_the_code_step(with_passwords):
    confirmed_device(with_passwords["carol"])
    client = _password_step("carol")

    page = client.get("/")
    api = client.get("/api/v1/studies")

    assert page.status_code == 302 and page["Location"].startswith("/accounts/otp/verify/?next=%2F")
    assert api.status_code == 403
    assert client.get("/accounts/otp/verify/").status_code == 200


def test_the_right_code_completes_the_sign_in_and_returns_to_next(with_passwords):
    device = confirmed_device(with_passwords["carol"])
    client = _password_step("carol")

    response = client.post("/accounts/otp/verify/", {"token": totp_code(device), "next": "/audit/"})

    assert response.status_code == 302 and response["Location"] == "/audit/"
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.otp_verified", actor_username="carol").count() == 1


def test_a_foreign_next_is_ignored(with_passwords):
    device = confirmed_device(with_passwords["carol"])
    client = _password_step("carol")

    response = client.post("/accounts/otp/verify/", {"token": totp_code(device), "next": "https://evil.example/"})

    assert response["Location"] == "/"


def test_a_code_cannot_be_used_twice(with_passwords):
    device = confirmed_device(with_passwords["carol"])
    code = totp_code(device)
    first = _password_step("carol")
    first.post("/accounts/otp/verify/", {"token": code})

    second = _password_step("carol")
    response = second.post("/accounts/otp/verify/", {"token": code})

    assert response.status_code == 400
    assert second.get("/").status_code == 302


def test_failures_throttle_the_device(with_passwords, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 3600  # the wait after a failure outlasts the test
    device = confirmed_device(with_passwords["carol"])
    client = _password_step("carol")
    client.post("/accounts/otp/verify/", {"token": f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"})

    response = client.post("/accounts/otp/verify/", {"token": totp_code(device)})

    assert response.status_code == 400
    assert AuditEvent.objects.filter(action="auth.otp_failed", actor_username="carol").count() == 2


def test_a_required_role_must_enrol_before_anything_else(with_passwords, settings):
    settings.CONCORDANCE_REQUIRE_OTP_ROLES = ["qa_chair"]
    chair = _password_step("dana")
    radiologist = _password_step("alice")

    response = chair.get("/audit/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/otp/setup/")
    assert "requires two-step sign-in" in chair.get("/accounts/otp/setup/").content.decode()
    assert radiologist.get("/").status_code == 200


def test_after_enrolling_a_required_role_gets_in(with_passwords, settings):
    settings.CONCORDANCE_REQUIRE_OTP_ROLES = ["qa_chair"]
    chair = _password_step("dana")
    chair.get("/accounts/otp/setup/")
    device = TOTPDevice.objects.get(user__username="dana")

    chair.post("/accounts/otp/setup/", {"token": totp_code(device)})

    assert chair.get("/audit/").status_code == 200


def test_htmx_requests_are_redirected_with_a_header(with_passwords):
    confirmed_device(with_passwords["carol"])
    client = _password_step("carol")

    response = client.post("/audit/", HTTP_HX_REQUEST="true")

    assert response.status_code == 204 and response["HX-Redirect"] == "/accounts/otp/verify/"


def test_logging_out_is_possible_at_the_code_step(with_passwords):
    confirmed_device(with_passwords["carol"])
    client = _password_step("carol")

    response = client.post("/accounts/logout/")

    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_the_verify_page_without_a_pending_step_goes_home(with_passwords):
    client = _password_step("alice")

    assert client.get("/accounts/otp/verify/")["Location"] == "/"


def test_an_unknown_role_in_the_setting_fails_the_system_check(settings):
    settings.CONCORDANCE_REQUIRE_OTP_ROLES = ["qa_chiar"]

    errors = [message for message in checks.run_checks() if message.id == "accounts.E001"]

    assert errors and "qa_chiar" in errors[0].msg


def test_an_administrator_can_reset_a_lost_device(with_passwords):
    from django.core.management import call_command

    confirmed_device(with_passwords["carol"])

    call_command("reset_second_factor", "carol", "--reason", "INC-42 lost phone")

    assert not TOTPDevice.objects.filter(user__username="carol").exists()
    event = AuditEvent.objects.get(action="auth.otp_reset")
    assert event.details == {"devices_removed": 1, "reason": "INC-42 lost phone"}
    assert _password_step("carol").get("/").status_code == 200


@pytest.mark.parametrize("args", [["nobody", "--reason", "x"], ["carol", "--reason", "  "]])
def test_the_reset_refuses_unknown_users_and_missing_reasons(with_passwords, args):
    from django.core.management import CommandError, call_command

    device = confirmed_device(with_passwords["carol"])

    with pytest.raises(CommandError):
        call_command("reset_second_factor", *args)

    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not AuditEvent.objects.filter(action="auth.otp_reset").exists()
