"""The organisation's public signing key: shown with its fingerprint to anyone signed in, and
downloadable as the PEM that verify_package.py --public-key pins."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from audit import checkpoints
from audit.signing import key_fingerprint, load_public_key_pem

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# Every person, eve (no role) included; the integration account uses the API, not pages.
@pytest.mark.parametrize("persona", ["alice", "carol", "dana", "lena", "otto", "eve"])
def test_anyone_signed_in_sees_the_key_and_its_fingerprint(personas, persona):
    fingerprint = key_fingerprint(checkpoints.signing_key().public_key())

    page = _client(personas[persona]).get("/audit/key/")

    html = page.content.decode()
    assert page.status_code == 200
    assert fingerprint in html and "BEGIN PUBLIC KEY" in html


def test_the_pem_download_is_the_signing_key(personas):
    response = _client(personas["eve"]).get("/audit/key.pem")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="concordance-audit-public-key.pem"'
    key = load_public_key_pem(response.content)
    assert key_fingerprint(key) == key_fingerprint(checkpoints.signing_key().public_key())
    # The fingerprint is the SHA-256 of the raw key, as verify_package.py computes it.
    raw = key.public_bytes_raw()
    assert hashlib.sha256(raw).hexdigest() == key_fingerprint(key)


def test_signed_out_visitors_are_sent_to_sign_in():
    for url in ("/audit/key/", "/audit/key.pem"):
        response = Client().get(url)
        assert response.status_code == 302 and "/accounts/login" in response["Location"]


def test_a_missing_key_file_is_a_clear_503(personas, settings, tmp_path):
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "absent.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = False
    checkpoints._signing_key.cache_clear()

    page = _client(personas["otto"]).get("/audit/key/")
    pem = _client(personas["otto"]).get("/audit/key.pem")

    assert page.status_code == 503 and "not available" in page.content.decode()
    assert pem.status_code == 503


def test_the_key_pages_take_get_only(personas):
    assert _client(personas["otto"]).post("/audit/key/").status_code == 405
    assert _client(personas["otto"]).post("/audit/key.pem").status_code == 405
