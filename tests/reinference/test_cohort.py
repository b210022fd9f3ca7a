"""Cohort selection, filter validation, seeded sampling, chunking and the summary arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from inference.reinference.cohort import CohortFilter, sample, select_cohort, split
from inference.reinference.summary import categories_of, latency_percentiles, percentile, side_summary
from portal.core.errors import InvalidRecord
from portal.records.models import AIOutput, SignedReport


def test_the_cohort_holds_studies_with_both_an_original_draft_and_a_final_report(make_cohort, other_version):
    studies = make_cohort(3, other_version)
    make_cohort(2, other_version, with_report=False)

    items = select_cohort(model_version=other_version, kind="report_draft", cohort=CohortFilter())

    assert [item[0] for item in items] == [s.pk for s in studies]
    for study_id, original_id, reference_id in items:
        assert AIOutput.objects.get(pk=original_id).study_id == study_id
        assert SignedReport.objects.get(pk=reference_id).status == "final"


def test_another_kind_has_no_cohort(make_cohort, other_version):
    make_cohort(2, other_version)
    assert select_cohort(model_version=other_version, kind="patient_letter", cohort=CohortFilter()) == []


def test_filters_narrow_the_cohort(make_cohort, other_version):
    chest = make_cohort(3, other_version, specialty="chest", modality="CR", radiologist="alice")
    neuro = make_cohort(2, other_version, specialty="neuro", modality="CT", radiologist="bob")

    def ids(**kwargs):
        return [
            i[0]
            for i in select_cohort(
                model_version=other_version, kind="report_draft", cohort=CohortFilter(**kwargs)
            )
        ]

    assert ids(specialty="neuro") == [s.pk for s in neuro]
    assert ids(modality="ct") == [s.pk for s in neuro]
    assert ids(radiologist="alice") == [s.pk for s in chest]
    # Studies are one day apart from 2026-01-10; both ends inclusive.
    assert ids(date_from=dt.date(2026, 1, 11), date_to=dt.date(2026, 1, 11)) == [chest[1].pk, neuro[1].pk]
    assert ids(radiologist="nobody") == []
    assert len(ids(date_from=dt.date.min, date_to=dt.date.max)) == 5  # the ends of the calendar are no error


def test_a_model_built_for_some_specialties_only_sees_those(make_cohort, other_version):
    make_cohort(2, other_version, specialty="chest")
    neuro = make_cohort(2, other_version, specialty="neuro")
    other_version.specialties = ["neuro"]
    other_version.save()

    items = select_cohort(model_version=other_version, kind="report_draft", cohort=CohortFilter())

    assert [i[0] for i in items] == [s.pk for s in neuro]


def test_the_original_of_the_runs_own_version_is_preferred(make_cohort, other_version, tiny_model_version):
    studies = make_cohort(1, other_version)
    own = AIOutput.objects.create(
        study=studies[0],
        kind="report_draft",
        model_version=tiny_model_version,
        inputs={},
        text="own draft",
        text_sha256="x",
        payload_sha256="y",
        generated_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),  # older than the vendor's draft
    )
    [(_, original_id, _)] = select_cohort(
        model_version=tiny_model_version, kind="report_draft", cohort=CohortFilter()
    )
    assert original_id == own.pk
    [(_, original_id, _)] = select_cohort(
        model_version=other_version, kind="report_draft", cohort=CohortFilter()
    )
    assert original_id != own.pk


def test_sampling_is_seeded_and_in_id_order():
    rows = [(i, i + 100, i + 200) for i in range(50)]
    first = sample(rows, 10, seed=7)
    assert first == sample(rows, 10, seed=7)
    assert first != sample(rows, 10, seed=8)
    assert first == sorted(first) and len(set(first)) == 10
    assert sample(rows, 80, seed=1) == rows
    assert sample(rows, None, seed=1) == rows


def test_split_makes_chunks_of_at_most_the_size():
    rows = [(i, i, i) for i in range(70)]
    chunks = split(rows, 32)
    assert [len(c) for c in chunks] == [32, 32, 6]
    assert [r for c in chunks for r in c] == rows
    with pytest.raises(ValueError):
        split(rows, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"specialty": "cardiology"},
        {"specialty": "<script>alert(1)</script>"},
        {"modality": "CT'; DROP TABLE records_study;--"},
        {"modality": "X" * 17},
        {"radiologist": "alice bob"},
        {"date_from": dt.date(2026, 2, 1), "date_to": dt.date(2026, 1, 1)},
        {"date_from": "2026-01-01"},
        {"sample": 0},
        {"sample": -3},
        {"sample": True},
        {"sample": "10"},
        {"seed": -1},
        {"seed": 1.5},
    ],
)
def test_malformed_filters_are_refused(kwargs):
    with pytest.raises(InvalidRecord):
        CohortFilter(**kwargs)


def test_the_stored_filter_leaves_unset_fields_out():
    cohort = CohortFilter(specialty="chest", date_from=dt.date(2026, 1, 2), sample=5, seed=3)
    assert cohort.to_dict() == {"specialty": "chest", "date_from": "2026-01-02", "sample": 5, "seed": 3}


def test_percentiles_interpolate_between_ranks():
    assert percentile([], 50) is None
    assert percentile([4.0], 99) == 4.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert latency_percentiles([None, 10.0, 20.0]) == {"p50": 15.0, "p95": 19.5, "p99": 19.9}


def test_side_summary_counts_significant_discrepancies_per_study_by_category():
    rows = [
        (categories_of([{"category": "missed_finding", "significance": "significant"}]), "3b", 1),
        (categories_of([{"category": "location", "significance": "minor"}]), "2a", 0),
        ({}, "1", 0),
        (
            categories_of(
                [
                    {"category": "missed_finding", "significance": "significant"},
                    {"category": "false_finding", "significance": "significant"},
                ]
            ),
            "3a",
            2,
        ),
    ]
    side = side_summary(rows)
    assert side["studies"] == 4
    assert side["significant_per_study_by_category"]["missed_finding"] == 0.5
    assert side["significant_per_study_by_category"]["false_finding"] == 0.25
    assert side["significant_per_study_by_category"]["location"] == 0.0
    assert side["significant_per_study"] == 0.75
    assert side["studies_with_significant"] == 2
    assert side["radpeer_suggested"] == {"1": 1, "2a": 1, "2b": 0, "3a": 1, "3b": 1}
