"""The legal page: study search by POST (no PHI in URLs), holds, export packages with progress."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from portal.legal import export_jobs, services
from portal.legal.models import ExportPackage, ExportStatus, LegalHold
from portal.records.models import ModelVersion

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def model_version(db) -> ModelVersion:
    """The version that drafted the test studies (it ran elsewhere)."""
    return ModelVersion.objects.create(name="vendor-model", version="9.1")


@pytest.fixture
def export_environment(settings, tmp_path):
    """A throwaway var dir for packages and a fresh checkpoint signing key."""
    from audit import checkpoints

    settings.VAR_DIR = tmp_path
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "audit-signing-key.pem"
    settings.AUDIT_SIGNING_KEY_CREATE = True
    checkpoints._signing_key.cache_clear()
    yield tmp_path
    checkpoints._signing_key.cache_clear()


def _context():
    from audit.log import AuditContext

    return AuditContext(channel="test")


# --- Access ---------------------------------------------------------------------------------------------


def test_counsel_opens_the_legal_page(page_for):
    response = page_for("lena").get("/legal/")

    body = response.content.decode()
    assert response.status_code == 200
    for form in ("search-form", "hold-form", "export-form", "exports-table", "holds-table"):
        assert f'data-testid="{form}"' in body
    assert 'data-testid="nav-legal"' in body


@pytest.mark.parametrize("persona", ["otto", "dana", "carol", "alice", "eve"])
def test_other_roles_are_refused_and_the_refusal_is_audited(page_for, persona):
    client = page_for(persona)

    answers = [
        client.get("/legal/").status_code,
        client.post("/legal/search", {"patient_mrn": "MRN-X"}).status_code,
        client.post("/legal/holds", {"matter_reference": "M", "reason": "r", "scope": "patient"}).status_code,
        client.post("/legal/exports/request", {"matter_reference": "M", "reason": "r"}).status_code,
        client.get("/legal/exports").status_code,
    ]

    assert answers == [403] * 5
    assert AuditEvent.objects.filter(action="access.denied", actor_username=persona).count() == 5
    assert not LegalHold.objects.exists() and not ExportPackage.objects.exists()


# --- Search ---------------------------------------------------------------------------------------------


def test_search_by_mrn_shows_the_patients_studies_and_is_audited_without_the_mrn(
    page_for, make_studies, model_version
):
    mine = make_studies(2, model_version, mrn="MRN-LEGAL-1")
    make_studies(1, model_version)

    response = page_for("lena").post("/legal/search", {"patient_mrn": "MRN-LEGAL-1"})

    body = response.content.decode()
    assert response.status_code == 200
    assert "2 studies found" in body
    assert all(s.accession_number in body for s in mine)
    event = AuditEvent.objects.get(action="legal.search")
    assert event.actor_username == "lena"
    assert event.details["studies"] == sorted(s.pk for s in mine)
    assert "MRN-LEGAL-1" not in str(event.details)


def test_search_by_accessions_and_date_range(page_for, make_studies, model_version):
    studies = make_studies(4, model_version)
    client = page_for("lena")

    by_accession = client.post(
        "/legal/search",
        {"accession_numbers": f"{studies[0].accession_number}, {studies[2].accession_number}"},
    ).content.decode()
    by_dates = client.post(
        "/legal/search", {"date_from": "2026-02-02", "date_to": "2026-02-03"}
    ).content.decode()

    assert "2 studies found" in by_accession and studies[1].accession_number not in by_accession
    assert "2 studies found" in by_dates
    assert studies[1].accession_number in by_dates and studies[2].accession_number in by_dates


def test_search_shows_which_studies_are_on_hold(page_for, make_studies, model_version, personas):
    studies = make_studies(2, model_version, mrn="MRN-HELD")
    services.legal_hold_place(
        actor=personas["lena"], context=_context(), matter_reference="M-1", reason="Claim",
        accession_numbers=[studies[0].accession_number],
    )  # fmt: skip

    body = page_for("lena").post("/legal/search", {"patient_mrn": "MRN-HELD"}).content.decode()

    assert f'data-testid="held-{studies[0].accession_number}"' in body
    assert f'data-testid="held-{studies[1].accession_number}"' not in body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Give a scope"),
        ({"patient_mrn": "MRN-NOBODY"}, "No patient has this MRN"),
        ({"accession_numbers": HOSTILE}, "Unknown accession numbers"),
        ({"date_from": "2026-03-01"}, "needs both date_from and date_to"),
        ({"date_from": "2026-03-01", "date_to": "2026-01-01"}, "must not be after"),
        ({"date_from": "1st of May"}, "Enter a valid date"),
        ({"patient_mrn": "x" * 65}, "at most 64 characters"),
    ],
)
def test_bad_searches_say_why_and_escape_what_was_typed(page_for, data, message):
    response = page_for("lena").post("/legal/search", data)

    body = response.content.decode()
    assert response.status_code == 400
    assert message in body
    assert "<script>alert" not in body
    assert not AuditEvent.objects.filter(action="legal.search").exists()


def test_search_is_never_a_get(page_for):
    assert page_for("lena").get("/legal/search", {"patient_mrn": "MRN-1"}).status_code == 405


def test_search_needs_the_csrf_token(personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas["lena"])

    assert client.post("/legal/search", {"patient_mrn": "MRN-1"}).status_code == 403


# --- Holds ----------------------------------------------------------------------------------------------


def test_counsel_places_a_hold_on_studies_and_releases_it(page_for, make_studies, model_version):
    studies = make_studies(2, model_version)
    client = page_for("lena")

    placed = client.post(
        "/legal/holds",
        {
            "matter_reference": "M-2026-7",
            "reason": "Claim received",
            "scope": "studies",
            "accession_numbers": "\n".join(s.accession_number for s in studies),
            "patient_mrn": "ignored because the scope is studies",
        },
        follow=True,
    )
    hold = LegalHold.objects.get()
    released = client.post(f"/legal/holds/{hold.pk}/release", {"reason": "Settled"}, follow=True)
    again = client.post(f"/legal/holds/{hold.pk}/release", {"reason": "Twice"}, follow=True)

    hold.refresh_from_db()
    assert "placed for matter M-2026-7" in placed.content.decode()
    assert {s.pk for s in hold.studies.all()} == {s.pk for s in studies}
    assert f'data-testid="hold-state-{hold.pk}">Released' in released.content.decode()
    assert "already released" in again.content.decode()
    assert hold.release_reason == "Settled" and hold.released_by.username == "lena"
    actions = list(AuditEvent.objects.filter(object_type="legal_hold").values_list("action", flat=True))
    assert actions.count("legal_hold.place") == 1 and actions.count("legal_hold.release") == 1


def test_a_hold_on_a_patient_and_on_a_date_range(page_for, make_studies, model_version):
    make_studies(1, model_version, mrn="MRN-P-1")
    client = page_for("lena")

    by_patient = client.post(
        "/legal/holds",
        {"matter_reference": "M-P", "reason": "r", "scope": "patient", "patient_mrn": "MRN-P-1"},
    )
    by_dates = client.post(
        "/legal/holds",
        {"matter_reference": "M-D", "reason": "r", "scope": "date_range", "date_from": "2026-01-01",
         "date_to": "2026-01-31"},
    )  # fmt: skip

    assert by_patient.status_code == 302 and by_dates.status_code == 302
    assert set(LegalHold.objects.values_list("scope", flat=True)) == {"patient", "date_range"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reason": "r", "scope": "studies", "accession_numbers": "ACC-1"}, "This field is required"),
        ({"matter_reference": "M", "reason": "r", "scope": "studies"}, "List at least one accession number"),
        ({"matter_reference": "M", "reason": "r", "scope": "patient", "patient_mrn": "NOPE"}, "No patient"),
        (
            {"matter_reference": "M", "reason": "r", "scope": "date_range", "date_from": "2026-01-01"},
            "needs both",
        ),
        (
            {"matter_reference": "M", "reason": "   ", "scope": "studies", "accession_numbers": "A"},
            "reason is",
        ),
        ({"matter_reference": "M", "reason": "r", "scope": "planet"}, "Select a valid choice"),
        (
            {"matter_reference": HOSTILE, "reason": "r", "scope": "studies", "accession_numbers": HOSTILE},
            "Unknown",
        ),
    ],
)
def test_bad_holds_are_refused_and_nothing_is_written(page_for, data, message):
    response = page_for("lena").post("/legal/holds", data)

    body = response.content.decode()
    assert response.status_code == 400
    assert message in body
    assert "<script>alert" not in body
    assert not LegalHold.objects.exists()


def test_a_release_needs_a_reason(page_for, make_studies, model_version, personas):
    studies = make_studies(1, model_version)
    hold = services.legal_hold_place(
        actor=personas["lena"], context=_context(), matter_reference="M", reason="r",
        accession_numbers=[studies[0].accession_number],
    )  # fmt: skip

    response = page_for("lena").post(f"/legal/holds/{hold.pk}/release", {"reason": ""})

    hold.refresh_from_db()
    assert response.status_code == 400 and "give a reason" in response.content.decode()
    assert hold.is_active
    assert page_for("lena").post("/legal/holds/987654/release", {"reason": "x"}).status_code == 404


def test_hostile_hold_texts_are_shown_escaped(page_for, make_studies, model_version, personas):
    studies = make_studies(1, model_version)
    services.legal_hold_place(
        actor=personas["lena"], context=_context(), matter_reference=HOSTILE, reason=HOSTILE,
        accession_numbers=[studies[0].accession_number],
    )  # fmt: skip

    body = page_for("lena").get("/legal/").content.decode()

    assert "<script>alert" not in body and "&lt;script&gt;alert" in body


# --- Exports --------------------------------------------------------------------------------------------


def test_counsel_requests_an_export_and_the_list_polls_while_it_builds(page_for, make_studies, model_version):
    studies = make_studies(2, model_version, mrn="MRN-EXP")
    client = page_for("lena")

    response = client.post(
        "/legal/exports/request",
        {"matter_reference": "M-EXP", "reason": "Subpoena", "patient_mrn": "MRN-EXP", "deidentify": "on"},
        follow=True,
    )
    package = ExportPackage.objects.get()
    partial = client.get("/legal/exports").content.decode()

    assert "it is being built" in response.content.decode()
    assert package.status == ExportStatus.QUEUED and package.deidentified
    assert package.progress_total == len(studies) and package.requested_by.username == "lena"
    assert 'hx-trigger="every 2s"' in partial and '"X-Concordance-Background": "1"' in partial
    assert f'data-testid="export-status-{package.pk}">Queued' in partial
    assert f'max="{len(studies)}" value="0"' in partial


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"matter_reference": "M", "reason": "r"}, "Give a scope"),
        ({"matter_reference": "M", "reason": "r", "patient_mrn": "NOBODY"}, "No patient has this MRN"),
        ({"matter_reference": "M", "reason": "r", "model": "ghost:1"}, "Select a valid choice"),
        ({"reason": "r", "patient_mrn": "MRN-1"}, "This field is required"),
        ({"matter_reference": "M", "reason": "r", "accession_numbers": HOSTILE}, "Unknown accession"),
    ],
)
def test_bad_export_requests_are_refused_and_nothing_is_queued(page_for, data, message):
    response = page_for("lena").post("/legal/exports/request", data)

    body = response.content.decode()
    assert response.status_code == 400
    assert message in body and "<script>alert" not in body
    assert not ExportPackage.objects.exists()


def test_an_export_by_model_version(page_for, make_studies, model_version):
    make_studies(2, model_version)

    response = page_for("lena").post(
        "/legal/exports/request", {"matter_reference": "M", "reason": "r", "model": "vendor-model:9.1"}
    )

    assert response.status_code == 302
    assert ExportPackage.objects.get().scope == {"model": "vendor-model:9.1"}


def test_a_ready_package_has_a_download_link_and_the_list_stops_polling(
    page_for, make_studies, model_version, personas, export_environment
):
    make_studies(1, model_version, mrn="MRN-READY")
    package = export_jobs.export_request(
        actor=personas["lena"], context=_context(), matter_reference="M-R", reason="r",
        patient_mrn="MRN-READY", enqueue=False,
    )  # fmt: skip
    export_jobs.export_build(package_pk=package.pk)
    client = page_for("lena")

    partial = client.get("/legal/exports").content.decode()
    download = client.get(f"/api/v1/legal/exports/{package.pk}/download")

    assert "hx-trigger" not in partial
    assert f'href="/api/v1/legal/exports/{package.pk}/download"' in partial
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    b"".join(download.streaming_content)


def test_counsel_cancels_a_queued_export_once(page_for, make_studies, model_version, personas):
    make_studies(1, model_version, mrn="MRN-C")
    package = export_jobs.export_request(
        actor=personas["lena"], context=_context(), matter_reference="M-C", reason="r",
        patient_mrn="MRN-C", enqueue=False,
    )  # fmt: skip
    client = page_for("lena")

    first = client.post(f"/legal/exports/{package.pk}/cancel", follow=True)
    second = client.post(f"/legal/exports/{package.pk}/cancel", follow=True)

    package.refresh_from_db()
    assert package.status == ExportStatus.CANCELLED
    assert "Export cancelled" in first.content.decode() and "already cancelled" in second.content.decode()
    assert client.post("/legal/exports/987654/cancel").status_code == 404


def test_the_legal_page_is_bounded_in_queries(page_for, make_studies, model_version, personas):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = page_for("lena")
    client.get("/legal/")
    counts = []
    for batch in (2, 12):
        studies = make_studies(batch, model_version)
        for study in studies:
            services.legal_hold_place(
                actor=personas["lena"], context=_context(), matter_reference="M", reason="r",
                accession_numbers=[study.accession_number],
            )  # fmt: skip
            export_jobs.export_request(
                actor=personas["lena"], context=_context(), matter_reference="M", reason="r",
                accession_numbers=[study.accession_number], enqueue=False,
            )  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/legal/").status_code == 200
        # The audit log's Merkle frontier writes a varying number of nodes per event: not the page's reads.
        counts.append(sum(1 for q in queries if "audit_" not in q["sql"] and "SAVEPOINT" not in q["sql"]))

    assert counts[0] == counts[1] <= 12  # no query per hold, study or package
