"""Legal holds through the API, and the retention purge that must respect them."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import immutability
from audit.models import AuditEvent
from audit.verify import verify_log
from portal.legal import services
from portal.legal.models import LegalHold
from portal.records.models import AIOutput, GroundTruthLabel, ModelVersion, Patient, SignedReport, Study
from portal.review.models import Comparison, Discrepancy
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

HOLDS = "/api/v1/legal/holds"


def _at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T10:00:00+00:00")


def make_study(accession: str, mrn: str, day: str, radiologist) -> Study:
    """A study with every kind of dependent row the purge must remove: drafts, a report chain,
    a comparison with a discrepancy, and a ground-truth label."""
    patient, _ = Patient.objects.get_or_create(mrn=mrn)
    study = Study.objects.create(accession_number=accession, patient=patient, study_datetime=_at(day))
    version, _ = ModelVersion.objects.get_or_create(name="concordance-chest", version="1.0.0")
    output = AIOutput.objects.create(
        study=study, kind="report_draft", model_version=version, text="Small effusion.",
        text_sha256="a" * 64, payload_sha256="b" * 64, generated_at=_at(day),
    )  # fmt: skip
    final = SignedReport.objects.create(
        study=study, radiologist=radiologist, text="No effusion.", text_sha256="c" * 64,
        payload_sha256="d" * 64, signed_at=_at(day),
    )  # fmt: skip
    addendum = SignedReport.objects.create(
        study=study, radiologist=radiologist, text="Addendum.", text_sha256="e" * 64,
        payload_sha256="f" * 64, signed_at=_at(day) + dt.timedelta(hours=1), status="addendum", amends=final,
    )  # fmt: skip
    SignedReport.objects.create(
        study=study, radiologist=radiologist, text="Correction.", text_sha256="0" * 64,
        payload_sha256="1" * 64, signed_at=_at(day) + dt.timedelta(hours=2), status="correction",
        amends=addendum,
    )  # fmt: skip
    comparison = Comparison.objects.create(
        study=study, candidate=output, reference=final, radpeer_suggested="2a"
    )
    Discrepancy.objects.create(
        comparison=comparison, category="false_finding", significance="minor", finding="effusion",
        explanation="Draft reports an effusion the radiologist did not.",
    )  # fmt: skip
    GroundTruthLabel.objects.create(study=study, category="false_finding", concept="effusion")
    return study


@pytest.fixture
def studies(personas) -> dict[str, Study]:
    """Four old studies (2019, two patients) and one recent one."""
    alice = personas["alice"]
    return {
        "old1": make_study("ACC-OLD1", "MRN-A", "2019-01-10", alice),
        "old2": make_study("ACC-OLD2", "MRN-A", "2019-03-15", alice),
        "old3": make_study("ACC-OLD3", "MRN-B", "2019-06-01", alice),
        "old4": make_study("ACC-OLD4", "MRN-C", "2019-09-20", alice),
        "new": make_study("ACC-NEW", "MRN-C", "2025-01-01", alice),
    }


def hold_body(**scope) -> dict:
    """A valid hold request body; ``scope`` supplies the scope fields."""
    return {"matter_reference": "Doe v. Hospital 2026-17", "reason": "Litigation anticipated.", **scope}


def events(action: str) -> list[AuditEvent]:
    """The audit events of one action, in log order."""
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- Placing, listing and releasing ---------------------------------------------------------------


def test_counsel_places_a_patient_hold_and_it_is_audited(client_for, studies, personas):
    response = client_for("lena").post(HOLDS, hold_body(patient_mrn="MRN-A"), format="json")

    assert response.status_code == 201, response.data
    hold = LegalHold.objects.get(pk=response.data["id"])
    assert (hold.scope, hold.patient.mrn, hold.placed_by) == ("patient", "MRN-A", personas["lena"])
    assert response.data["is_active"] is True
    [event] = events("legal_hold.place")
    assert (event.actor_username, event.object_type, event.object_id) == ("lena", "legal_hold", str(hold.pk))
    assert event.patient_id == hold.patient_id
    assert event.details["matter_reference"] == "Doe v. Hospital 2026-17"
    assert event.details["scope"] == "patient"
    assert "Litigation" not in str(event.details)  # the free-text reason stays out of the log
    assert event.channel == f"POST {HOLDS}"


def test_counsel_places_a_study_list_hold(client_for, studies):
    body = hold_body(accession_numbers=["ACC-OLD3", "ACC-OLD1", "ACC-OLD3"])
    response = client_for("lena").post(HOLDS, body, format="json")

    assert response.status_code == 201, response.data
    assert response.data["scope"] == "studies"
    assert response.data["accession_numbers"] == ["ACC-OLD1", "ACC-OLD3"]
    [event] = events("legal_hold.place")
    assert event.details["study_ids"] == [studies["old1"].pk, studies["old3"].pk]


def test_counsel_places_a_date_range_hold(client_for, studies):
    body = hold_body(date_from="2019-06-01", date_to="2019-06-30")
    response = client_for("lena").post(HOLDS, body, format="json")

    assert response.status_code == 201, response.data
    assert (response.data["date_from"], response.data["date_to"]) == ("2019-06-01", "2019-06-30")
    [event] = events("legal_hold.place")
    assert (event.details["date_from"], event.details["date_to"]) == ("2019-06-01", "2019-06-30")


def test_hostile_text_is_stored_verbatim(client_for, studies):
    hostile = "  <script>alert('x')</script> '; DROP TABLE legal_legalhold; -- ✓ \n"
    body = {"matter_reference": hostile[:128], "reason": hostile, "patient_mrn": "MRN-B"}
    response = client_for("lena").post(HOLDS, body, format="json")

    assert response.status_code == 201, response.data
    hold = LegalHold.objects.get(pk=response.data["id"])
    assert (hold.reason, hold.matter_reference) == (hostile, hostile[:128])
    assert response.data["reason"] == hostile


def test_holds_are_listed_newest_first_and_the_read_is_audited(client_for, studies):
    lena = client_for("lena")
    first = lena.post(HOLDS, hold_body(patient_mrn="MRN-A"), format="json").data["id"]
    second = lena.post(HOLDS, hold_body(accession_numbers=["ACC-OLD4"]), format="json").data["id"]
    lena.post(f"{HOLDS}/{first}/release", {"reason": "Settled."}, format="json")

    response = client_for("otto").get(HOLDS)

    assert response.status_code == 200
    assert [h["id"] for h in response.data["results"]] == [second, first]
    assert client_for("otto").get(HOLDS, {"active": "true"}).data["results"][0]["id"] == second
    assert [h["id"] for h in client_for("otto").get(HOLDS, {"active": "false"}).data["results"]] == [first]
    assert client_for("otto").get(HOLDS, {"active": "maybe"}).status_code == 400
    assert events("legal_hold.list")[0].details == {"ids": [second, first]}
    assert events("legal_hold.list")[0].actor_username == "otto"


def test_counsel_releases_a_hold_once_with_a_reason(client_for, studies, personas):
    lena = client_for("lena")
    hold_id = lena.post(HOLDS, hold_body(patient_mrn="MRN-A"), format="json").data["id"]

    response = lena.post(f"{HOLDS}/{hold_id}/release", {"reason": "Matter settled."}, format="json")

    assert response.status_code == 200, response.data
    hold = LegalHold.objects.get(pk=hold_id)
    assert (hold.released_by, hold.release_reason, hold.is_active) == (
        personas["lena"],
        "Matter settled.",
        False,
    )
    assert response.data["released_by"] == "lena"
    [event] = events("legal_hold.release")
    assert (event.object_id, event.details["matter_reference"]) == (str(hold_id), "Doe v. Hospital 2026-17")
    assert "settled" not in str(event.details)

    again = lena.post(f"{HOLDS}/{hold_id}/release", {"reason": "Again."}, format="json")
    assert again.status_code == 409
    assert len(events("legal_hold.release")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (hold_body(patient_mrn="MRN-UNKNOWN"), "patient_mrn"),
        (hold_body(accession_numbers=["ACC-OLD1", "ACC-NOPE"]), "accession_numbers"),
        (hold_body(accession_numbers=[]), "accession_numbers"),
        ({**hold_body(patient_mrn="MRN-A"), "reason": ""}, "reason"),
        ({**hold_body(patient_mrn="MRN-A"), "reason": "   \n"}, "reason"),
        ({**hold_body(patient_mrn="MRN-A"), "matter_reference": " "}, "matter_reference"),
        ({"reason": "x", "patient_mrn": "MRN-A"}, "matter_reference"),
        (hold_body(date_from="2019-07-01", date_to="2019-06-01"), "date_to"),
        (hold_body(date_from="2019-07-01"), "date_to"),
        (hold_body(date_from="2019-13-01", date_to="2019-12-31"), "date_from"),
        (hold_body(), "scope"),
        (hold_body(patient_mrn="MRN-A", accession_numbers=["ACC-OLD1"]), "scope"),
        ({**hold_body(patient_mrn="MRN-A"), "reason": "null\x00byte"}, "reason"),
    ],
)
def test_bad_hold_requests_are_refused_with_the_field(client_for, studies, body, field):
    response = client_for("lena").post(HOLDS, body, format="json")

    assert response.status_code == 400
    assert field in (response.data.get("field"), *response.data.keys()), response.data
    assert not LegalHold.objects.exists()
    assert not events("legal_hold.place")


@pytest.mark.parametrize("reason", ["", "  ", None])
def test_a_release_needs_a_reason(client_for, studies, reason):
    lena = client_for("lena")
    hold_id = lena.post(HOLDS, hold_body(patient_mrn="MRN-A"), format="json").data["id"]
    body = {} if reason is None else {"reason": reason}

    response = lena.post(f"{HOLDS}/{hold_id}/release", body, format="json")

    assert response.status_code == 400
    assert "reason" in (response.data.get("field"), *response.data.keys())
    assert LegalHold.objects.get(pk=hold_id).is_active


def test_releasing_an_unknown_hold_is_404(client_for, studies):
    assert (
        client_for("lena").post(f"{HOLDS}/999999/release", {"reason": "x"}, format="json").status_code == 404
    )


def test_the_database_refuses_inconsistent_holds(personas, studies):
    base = {
        "matter_reference": "M",
        "reason": "R",
        "placed_by": personas["lena"],
        "placed_at": timezone.now(),
    }
    patient = studies["old1"].patient
    for bad in (
        {"scope": "patient"},
        {"scope": "studies", "patient": patient},
        {"scope": "date_range", "date_from": dt.date(2020, 1, 2), "date_to": dt.date(2020, 1, 1)},
        {"scope": "patient", "patient": patient, "released_at": timezone.now()},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            LegalHold.objects.create(**base, **bad)


# --- Who may do what ------------------------------------------------------------------------------

PLACE = {"lena": 201, "adam": 201}
READ = {"lena": 200, "otto": 200, "dana": 200, "adam": 200}


@pytest.fixture
def everyone(client_for, personas):
    """Clients for every persona plus adam, an admin, and None for an anonymous caller."""
    personas["adam"] = make_user("adam", "admin")  # client_for looks users up in this dict
    return [*personas, None]


def test_role_matrix_for_placing(client_for, everyone, studies):
    for index, name in enumerate(everyone):
        body = hold_body(accession_numbers=["ACC-OLD1"], matter_reference=f"M-{index}")
        response = client_for(name).post(HOLDS, body, format="json")
        expected = 401 if name is None else PLACE.get(name, 403)
        assert response.status_code == expected, name
    assert LegalHold.objects.count() == len(PLACE)


def test_role_matrix_for_listing(client_for, everyone):
    for name in everyone:
        expected = 401 if name is None else READ.get(name, 403)
        assert client_for(name).get(HOLDS).status_code == expected, name


def test_role_matrix_for_releasing(client_for, everyone, studies, personas):
    for name in everyone:
        hold = services.legal_hold_place(
            actor=personas["lena"], context=services.audit.SYSTEM, matter_reference="M", reason="R",
            patient_mrn="MRN-A",
        )  # fmt: skip
        response = client_for(name).post(f"{HOLDS}/{hold.pk}/release", {"reason": "Done."}, format="json")
        expected = 401 if name is None else (200 if name in PLACE else 403)
        assert response.status_code == expected, name
        assert LegalHold.objects.get(pk=hold.pk).is_active is (expected != 200)
    denied = AuditEvent.objects.filter(action="access.denied").count()
    assert denied == len(everyone) - len(PLACE)


# --- holds_blocking -------------------------------------------------------------------------------


def test_holds_blocking_covers_each_scope_and_ignores_released_holds(personas, studies):
    lena, ctx = personas["lena"], services.audit.SYSTEM
    by_patient = services.legal_hold_place(
        actor=lena, context=ctx, matter_reference="P", reason="R", patient_mrn="MRN-A"
    )
    by_study = services.legal_hold_place(
        actor=lena, context=ctx, matter_reference="S", reason="R", accession_numbers=["ACC-OLD1"]
    )
    by_date = services.legal_hold_place(
        actor=lena, context=ctx, matter_reference="D", reason="R",
        date_from=dt.date(2019, 1, 10), date_to=dt.date(2019, 1, 10),
    )  # fmt: skip

    assert services.holds_blocking(studies["old1"]) == [by_patient, by_study, by_date]
    assert services.holds_blocking(studies["old2"]) == [by_patient]
    assert services.holds_blocking(studies["old3"]) == []

    services.legal_hold_release(actor=lena, context=ctx, hold=by_patient, reason="Settled.")
    assert services.holds_blocking(studies["old1"]) == [by_study, by_date]
    with pytest.raises(services.RecordConflict):
        services.legal_hold_release(actor=lena, context=ctx, hold=by_patient, reason="Again.")


# --- The retention purge --------------------------------------------------------------------------


def purge(*args: str) -> str:
    """Run the command and return what it printed."""
    out = io.StringIO()
    call_command("retention_purge", *args, stdout=out)
    return out.getvalue()


def _rows(study: Study) -> dict[str, int]:
    return {
        "studies": Study.objects.filter(pk=study.pk).count(),
        "ai_outputs": AIOutput.objects.filter(study=study).count(),
        "signed_reports": SignedReport.objects.filter(study=study).count(),
        "comparisons": Comparison.objects.filter(study=study).count(),
        "discrepancies": Discrepancy.objects.filter(comparison__study=study).count(),
        "labels": GroundTruthLabel.objects.filter(study=study).count(),
    }


FULL = {"studies": 1, "ai_outputs": 1, "signed_reports": 3, "comparisons": 1, "discrepancies": 1, "labels": 1}
GONE = dict.fromkeys(FULL, 0)


def test_purge_keeps_held_studies_of_each_scope_and_removes_the_rest(personas, studies):
    lena, ctx = personas["lena"], services.audit.SYSTEM
    patient_hold = services.legal_hold_place(
        actor=lena, context=ctx, matter_reference="Doe-P", reason="R", patient_mrn="MRN-A"
    )
    study_hold = services.legal_hold_place(
        actor=lena, context=ctx, matter_reference="Doe-S", reason="R", accession_numbers=["ACC-OLD3"]
    )
    date_hold = services.legal_hold_place(
        actor=lena, context=ctx, matter_reference="Doe-D", reason="R",
        date_from=dt.date(2019, 9, 1), date_to=dt.date(2019, 9, 30),
    )  # fmt: skip
    unheld = make_study("ACC-OLD5", "MRN-D", "2019-11-11", personas["bob"])
    size_before = AuditEvent.objects.count()

    output = purge("--before", "2020-01-01")

    for key in ("old1", "old2", "old3", "old4", "new"):
        assert _rows(studies[key]) == FULL, key
    assert _rows(unheld) == GONE
    assert not Patient.objects.filter(mrn="MRN-D").exists()  # its only study went
    assert f"study {studies['old1'].pk} kept: held by Doe-P (hold {patient_hold.pk})" in output
    assert f"study {studies['old3'].pk} kept: held by Doe-S (hold {study_hold.pk})" in output
    assert f"study {studies['old4'].pk} kept: held by Doe-D (hold {date_hold.pk})" in output
    assert output.strip().endswith("1 studies purged, 4 kept under legal hold, 1 patients purged")
    [event] = events("retention.purge")
    assert (event.object_type, event.study_id, event.actor_kind) == ("study", unheld.pk, "system")
    assert event.details["deleted"]["signed_reports"] == 3
    assert event.details["patient_deleted"] is True
    # The audit trail only grew: nothing in it was purged, and it still verifies end to end.
    assert AuditEvent.objects.count() == size_before + 1
    assert verify_log().ok


def test_purged_evidence_tables_are_immutable_again_afterwards(personas, studies):
    purge("--before", "2020-01-01")
    output = AIOutput.objects.get(study=studies["new"])
    with pytest.raises(IntegrityError), transaction.atomic():
        AIOutput.objects.filter(pk=output.pk).delete()
    assert set(services.PURGED_IMMUTABLE_TABLES) <= set(immutability.IMMUTABLE_TABLES)


def test_a_patient_with_remaining_studies_is_kept(personas, studies):
    purge("--before", "2020-01-01")

    assert Study.objects.filter(patient__mrn="MRN-C").count() == 1  # the 2025 study
    assert not Patient.objects.filter(mrn__in=["MRN-A", "MRN-B"]).exists()
    assert len(events("retention.purge")) == 4
    assert verify_log().ok


def test_a_dry_run_changes_nothing(personas, studies):
    services.legal_hold_place(
        actor=personas["lena"], context=services.audit.SYSTEM, matter_reference="Doe-P", reason="R",
        patient_mrn="MRN-A",
    )  # fmt: skip
    size_before = AuditEvent.objects.count()

    output = purge("--before", "2020-01-01", "--dry-run")

    for study in studies.values():
        assert _rows(study) == FULL
    assert AuditEvent.objects.count() == size_before
    assert f"study {studies['old3'].pk} would be purged" in output
    assert f"study {studies['old1'].pk} kept: held by Doe-P" in output
    assert output.strip().endswith(
        "dry run: 2 studies would be purged, 2 kept under legal hold, 1 patients would be purged"
    )


def test_a_released_hold_no_longer_blocks(personas, studies):
    lena, ctx = personas["lena"], services.audit.SYSTEM
    hold = services.legal_hold_place(
        actor=lena, context=ctx, matter_reference="Doe-S", reason="R", accession_numbers=["ACC-OLD3"]
    )
    services.legal_hold_release(actor=lena, context=ctx, hold=hold, reason="Settled.")

    output = purge("--before", "2020-01-01")

    assert _rows(studies["old3"]) == GONE
    assert "kept" not in output.splitlines()[-1].split(",")[0]
    assert LegalHold.objects.get(pk=hold.pk).matter_reference == "Doe-S"  # the hold's record stays
    assert verify_log().ok


def test_a_bad_date_is_refused():
    with pytest.raises(Exception, match="YYYY-MM-DD"):
        purge("--before", "01/01/2020")
