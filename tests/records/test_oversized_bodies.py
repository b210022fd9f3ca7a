"""Oversized bodies through a real HTTP server: a readable 413, never a connection reset.

The test client never opens a socket, so it cannot show what a sender sees when the server answers
before reading the body; these tests send 5 MB over TCP to Django's live server.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from rest_framework.authtoken.models import Token

from portal.records.models import InboundMessage, Study

pytestmark = pytest.mark.django_db(transaction=True)

FIVE_MB = 5 * 1024 * 1024


def _post(live_server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Length": str(len(body)), **headers})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def token(personas) -> str:
    return Token.objects.get_or_create(user=personas["ris"])[0].key


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/fhir/DiagnosticReport", "application/fhir+json"),
        ("/api/v1/fhir", "application/fhir+json"),
        ("/api/v1/hl7", "x-application/hl7-v2+er7"),
        ("/api/v1/signed-reports", "application/json"),
    ],
)
def test_a_5_mb_body_gets_a_readable_413(live_server, token, path, content_type):
    body = b"{" + b" " * (FIVE_MB - 2) + b"}"

    status, headers, content = _post(
        live_server, path, body, {"Content-Type": content_type, "Authorization": f"Token {token}"}
    )

    assert status == 413
    answer = json.loads(content)
    if path.startswith("/api/v1/fhir"):
        assert answer["resourceType"] == "OperationOutcome"
        assert answer["issue"][0]["code"] == "too-long"
    else:
        assert answer["error"] == "too_large"
    assert Study.objects.count() == 0


def test_the_connection_stays_usable_after_a_413(live_server, token):
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    auth = {"Authorization": f"Token {token}", "Content-Type": "x-application/hl7-v2+er7"}
    try:
        big = b"M" * FIVE_MB
        connection.request("POST", "/api/v1/hl7", body=big, headers={**auth, "Content-Length": str(len(big))})
        first = connection.getresponse()
        first.read()
        small = b"MSH|^~\\&|X"
        connection.request(
            "POST", "/api/v1/hl7", body=small, headers={**auth, "Content-Length": str(len(small))}
        )
        second = connection.getresponse()
        second.read()
    finally:
        connection.close()

    assert (first.status, second.status) == (413, 400)
    # The refused oversized message is logged too, without its body (it was never read into memory).
    logged = InboundMessage.objects.order_by("pk").first()
    assert (logged.outcome, logged.status_code, logged.size) == ("rejected", 413, FIVE_MB)


@pytest.fixture
def gunicorn_url(tmp_path) -> str:
    """A real gunicorn (the production server) on a free port; its refusals need no database."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CONCORDANCE_VAR_DIR": str(tmp_path), "CONCORDANCE_TLS": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not come up")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("path", ["/api/v1/hl7", "/api/v1/fhir/Patient"])
def test_gunicorn_answers_a_5_mb_body_with_a_readable_413_not_a_reset(gunicorn_url, path):
    class Server:
        url = gunicorn_url

    status, _headers, content = _post(Server, path, b"M" * FIVE_MB, {"Content-Type": "application/fhir+json"})

    assert status == 413
    assert b"exceeds the limit" in content
