"""The landing page: only for signed-in users, counts limited to what the user may see, text escaped."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import signed_report_json, study_json

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_the_login_page():
    response = Client().get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_radiologist_counts_only_their_own_studies(ris, personas):
    ris.post("/api/v1/studies", study_json(accession="A1", study_instance_uid="1.2.1"), format="json")
    ris.post("/api/v1/studies", study_json(accession="A2", study_instance_uid="1.2.2"), format="json")
    ris.post("/api/v1/signed-reports", signed_report_json(accession="A1", radiologist="alice"), format="json")
    client = Client()
    client.force_login(personas["alice"])

    alice_page = client.get("/").content.decode()
    client.force_login(personas["carol"])
    carol_page = client.get("/").content.decode()

    assert "<dt>Studies</dt><dd>1</dd>" in alice_page
    assert "<dt>Studies</dt><dd>2</dd>" in carol_page


def test_the_page_escapes_the_username(personas):
    from django.contrib.auth.models import User

    hostile = User.objects.create_user(username="<b>x</b>")
    client = Client()
    client.force_login(hostile)

    page = client.get("/").content.decode()

    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
