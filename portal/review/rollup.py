"""The dashboard's daily rollup: counts per day and breakdown, recomputed from the cases.

Every figure of the review pages (queue totals aside) is read from these rows, so the dashboard, the
radiologist's feedback page, the performance page and its CSV and PDF agree with each other. The
periodic task recomputes everything; a review refreshes the one day of its case as soon as it commits,
so the figures never lag a committee decision.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from portal.records.models import AIOutput, Study
from portal.review.models import Comparison, DailyStat, RadpeerScore, Review, StatDimension

_DIMENSION_COLUMNS = {
    StatDimension.ALL: None,
    StatDimension.SPECIALTY: "specialty",
    StatDimension.MODALITY: "modality",
    StatDimension.MODEL: "model_version_id",
    StatDimension.RADIOLOGIST: "radiologist_id",
}


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    return start, start + dt.timedelta(days=1)


class _Cells:
    """The rows being built, by (dimension, key, day)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.rows: dict[tuple[str, str, dt.date], DailyStat] = {}

    def __call__(self, dimension: str, key: object, day: dt.date) -> DailyStat:
        ident = (dimension, "" if key is None else str(key), day)
        if ident not in self.rows:
            self.rows[ident] = DailyStat(dimension=dimension, key=ident[1], day=day, refreshed_at=self.now)
        return self.rows[ident]


def _case_counts(cell: _Cells, comparisons: QuerySet[Comparison]) -> None:
    radpeer_counts = {
        f"radpeer_{score}": Count("pk", filter=Q(radpeer_suggested=score)) for score in RadpeerScore.values
    }
    for dimension, column in _DIMENSION_COLUMNS.items():
        key = F(column) if column else F("radpeer_suggested")  # ignored for "all"
        rows = (
            comparisons.annotate(day=TruncDate("study_date"), k=key)
            .values("day", *(["k"] if column else []))
            .annotate(
                compared=Count("pk"),
                with_discrepancy=Count("pk", filter=Q(significant_count__gt=0) | Q(minor_count__gt=0)),
                significant=Count("pk", filter=Q(significant_count__gt=0)),
                **radpeer_counts,
            )
        )
        for row in rows:
            target = cell(dimension, row.get("k") if column else None, row["day"])
            for name in ("compared", "with_discrepancy", "significant", *radpeer_counts):
                setattr(target, name, row[name])


def _committee_counts(cell: _Cells, reviews: QuerySet[Review]) -> None:
    """The committee's current reviews: RADPEER only where it scored the radiologist; who erred."""
    counts = {f"committee_{score}": Count("pk", filter=Q(radpeer=score)) for score in RadpeerScore.values}
    counts.update(
        reviewed=Count("pk"),
        ai_errors=Count("pk", filter=Q(ai_erred=True)),
        radiologist_errors=Count("pk", filter=Q(radiologist_erred=True)),
        carried=Count("pk", filter=Q(carried_ai_error=True)),
    )
    for dimension, column in _DIMENSION_COLUMNS.items():
        values = ["day", "k"] if column else ["day"]
        rows = (
            reviews.annotate(
                day=TruncDate("comparison__study_date"), k=F(f"comparison__{column or 'specialty'}")
            )
            .values(*values)
            .annotate(**counts)
        )
        for row in rows:
            target = cell(dimension, row.get("k") if column else None, row["day"])
            for name in counts:
                setattr(target, name, row[name])


def _record_counts(cell: _Cells, day: dt.date | None) -> None:
    studies, outputs = Study.objects.all(), AIOutput.objects.all()
    if day is not None:
        start, end = _day_bounds(day)
        studies = studies.annotate(when=Coalesce("study_datetime", "created_at")).filter(
            when__gte=start, when__lt=end
        )
        outputs = outputs.filter(generated_at__gte=start, generated_at__lt=end)
    study_day = TruncDate(Coalesce("study_datetime", "created_at"))
    for dimension, column in (
        (StatDimension.ALL, None),
        (StatDimension.SPECIALTY, "specialty"),
        (StatDimension.MODALITY, "modality"),
    ):
        values = ["day", column] if column else ["day"]
        for row in studies.annotate(day=study_day).values(*values).annotate(n=Count("pk")):
            cell(dimension, row.get(column) if column else None, row["day"]).studies = row["n"]
    for dimension, column in ((StatDimension.ALL, None), (StatDimension.MODEL, "model_version_id")):
        values = ["day", column] if column else ["day"]
        for row in outputs.annotate(day=TruncDate("generated_at")).values(*values).annotate(n=Count("pk")):
            cell(dimension, row.get(column) if column else None, row["day"]).ai_outputs = row["n"]


def daily_stats_refresh(*, day: dt.date | None = None) -> int:
    """Recompute the daily counts (all days, or only ``day``); returns the rows written.

    Derived figures only (no record changes, nothing to audit). Replaced in one transaction, so the
    pages never show half a refresh. ``refreshed_at`` says when; the pages print the oldest row's as
    "as of" (a one-day refresh leaves the other days' times as they were).
    """
    cell = _Cells(timezone.now())
    comparisons = Comparison.objects.filter(study_date__isnull=False)
    reviews = Review.objects.filter(superseded_by__isnull=True, comparison__study_date__isnull=False)
    if day is not None:
        start, end = _day_bounds(day)
        comparisons = comparisons.filter(study_date__gte=start, study_date__lt=end)
        reviews = reviews.filter(comparison__study_date__gte=start, comparison__study_date__lt=end)
    _case_counts(cell, comparisons)
    _committee_counts(cell, reviews)
    _record_counts(cell, day)
    with transaction.atomic():
        stale = DailyStat.objects.all() if day is None else DailyStat.objects.filter(day=day)
        stale.delete()
        DailyStat.objects.bulk_create(list(cell.rows.values()), batch_size=2000)
    return len(cell.rows)


def refresh_day_of(comparison_id: int) -> None:
    """Refresh the rollup of the day a case belongs to (called once a review has committed)."""
    study_date = Comparison.objects.filter(pk=comparison_id).values_list("study_date", flat=True).first()
    if study_date is not None:
        daily_stats_refresh(day=timezone.localdate(study_date))
