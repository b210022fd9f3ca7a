"""Which studies a legal hold covers, and the released-hold rule (portal.legal.holds)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings

from audit.log import SYSTEM
from portal.legal import services
from portal.legal.holds import hold_ids_covering, holds_covering
from portal.records.models import Patient, Study

pytestmark = pytest.mark.django_db


def _study(accession: str, mrn: str, when: dt.datetime | None) -> Study:
    patient, _ = Patient.objects.get_or_create(mrn=mrn)
    return Study.objects.create(accession_number=accession, patient=patient, study_datetime=when)


@pytest.fixture
def studies() -> dict[str, Study]:
    utc = dt.UTC
    return {
        "a1": _study("ACC-A1", "MRN-A", dt.datetime(2019, 1, 10, 10, tzinfo=utc)),
        "a2": _study("ACC-A2", "MRN-A", dt.datetime(2019, 3, 1, 10, tzinfo=utc)),
        "b1": _study("ACC-B1", "MRN-B", dt.datetime(2019, 1, 10, 23, 30, tzinfo=utc)),
        "b2": _study("ACC-B2", "MRN-B", None),
    }


def _place(lena, **scope) -> int:
    hold = services.legal_hold_place(actor=lena, context=SYSTEM, matter_reference="M", reason="R", **scope)
    return hold.pk


def test_each_scope_covers_its_studies_and_nothing_else(personas, studies):
    lena = personas["lena"]
    by_patient = _place(lena, patient_mrn="MRN-A")
    by_study = _place(lena, accession_numbers=["ACC-B1"])
    by_date = _place(lena, date_from=dt.date(2019, 1, 10), date_to=dt.date(2019, 1, 10))

    covered = holds_covering(list(studies.values()))

    assert covered[studies["a1"].pk] == sorted([by_patient, by_date])
    assert covered[studies["a2"].pk] == [by_patient]
    assert covered[studies["b1"].pk] == sorted([by_study, by_date])
    assert covered[studies["b2"].pk] == []  # undated: no date-range hold covers it


def test_date_ranges_are_read_in_the_portal_time_zone(personas, studies):
    """23:30 UTC on 10 January is already 11 January in Auckland: counsel's calendar decides."""
    hold = _place(personas["lena"], date_from=dt.date(2019, 1, 11), date_to=dt.date(2019, 1, 11))
    b1 = studies["b1"]
    assert holds_covering([b1])[b1.pk] == []
    with override_settings(TIME_ZONE="Pacific/Auckland"):
        assert holds_covering([b1])[b1.pk] == [hold]


def test_a_released_hold_keeps_nothing_but_stays_in_the_history(personas, studies):
    """Purge and the legal page's flag: active holds only. Packages: every hold, released ones too."""
    lena = personas["lena"]
    hold_id = _place(lena, patient_mrn="MRN-A")
    services.legal_hold_release(
        actor=lena, context=SYSTEM, hold=services.LegalHold.objects.get(pk=hold_id), reason="Settled."
    )
    a1 = studies["a1"]

    assert holds_covering([a1])[a1.pk] == []
    assert services.holds_blocking(a1) == []
    assert holds_covering([a1], include_released=True)[a1.pk] == [hold_id]
    assert hold_ids_covering([a1.pk, studies["b1"].pk], include_released=True) == {hold_id}
    assert hold_ids_covering([a1.pk]) == set()


def test_coverage_of_many_studies_takes_a_fixed_number_of_queries(
    personas, studies, django_assert_max_num_queries
):
    lena = personas["lena"]
    _place(lena, patient_mrn="MRN-A")
    _place(lena, accession_numbers=["ACC-B1", "ACC-A2"])
    extra = [_study(f"ACC-X{i}", f"MRN-X{i}", dt.datetime(2019, 2, 1, tzinfo=dt.UTC)) for i in range(40)]
    with django_assert_max_num_queries(3):
        covered = holds_covering([*studies.values(), *extra])
    assert len(covered) == 44


def test_no_studies_no_holds(personas, studies):
    _place(personas["lena"], patient_mrn="MRN-A")
    assert holds_covering([]) == {}
    assert hold_ids_covering([], include_released=True) == set()
