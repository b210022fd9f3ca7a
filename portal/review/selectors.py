"""Reads of the review data that grow beyond one query: the QA queue (filters, keyset pagination), the
case page, the dashboard, the radiologist's feedback and the chair's performance summaries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core import signing
from django.db.models import Count, Exists, F, Lookup, OuterRef, Q, QuerySet, Sum
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.utils import timezone

from audit.models import AuditEvent
from portal.accounts import roles
from portal.records.models import AIOutput, AIOutputKind, AIOutputOrigin, SignedReport, Study
from portal.review.errors import InvalidReview
from portal.review.models import (
    Assignment,
    Comparison,
    CorrectSide,
    DailyStat,
    Discrepancy,
    DiscrepancyVerdict,
    Feedback,
    Review,
    StatDimension,
    Verdict,
)

User = get_user_model()

PAGE_SIZE = 50
RADPEER_VALUES = ("1", "2a", "2b", "3a", "3b")
# Sort name -> ordering; every ordering ends in the keyset (study_date, id) and runs in one direction,
# so the "after this row" condition is a plain tuple comparison that the matching index serves.
SORTS: dict[str, tuple[str, ...]] = {
    "-date": ("-study_date", "-id"),
    "date": ("study_date", "id"),
    "-significant": ("-significant_count", "-study_date", "-id"),
    "-radpeer": ("-radpeer_suggested", "-study_date", "-id"),
}
CURSOR_SALT = "concordance.review.queue-cursor"


def studies_awaiting_comparison(*, limit: int) -> list[int]:
    """Studies with a clinical AI draft and a signed report but no comparison of that draft yet."""
    drafts = AIOutput.objects.filter(
        study=OuterRef("pk"), kind=AIOutputKind.REPORT_DRAFT, origin=AIOutputOrigin.CLINICAL
    )
    uncompared = drafts.filter(~Exists(Comparison.objects.filter(candidate=OuterRef("pk"))))
    qs = Study.objects.filter(Exists(SignedReport.objects.filter(study=OuterRef("pk"))), Exists(uncompared))
    return list(qs.order_by("pk").values_list("pk", flat=True)[:limit])


def comparison_counts(user: AbstractBaseUser | AnonymousUser) -> dict[str, int]:
    """How many AI drafts were compared, and how many differ significantly, among visible studies."""
    studies = roles.visible_studies(user, Study.objects.all())
    return Comparison.objects.filter(study__in=studies).aggregate(
        compared=Count("pk"), significant=Count("pk", filter=Q(significant_count__gt=0))
    )


# --- The queue --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QueueFilters:
    """The queue's filters, validated (by :class:`portal.review.forms.QueueFilterForm`)."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    specialty: str = ""
    modality: str = ""
    category: str = ""
    significance: str = ""  # "significant", "minor" (minor only) or "none"
    radpeer: str = ""
    model_version: int | None = None
    reviewer: int | None = None
    status: str = ""

    def as_params(self) -> dict[str, str]:
        """The non-empty filters as query parameters (what a campaign stores, what links carry)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value not in (None, ""):
                out[field.name] = value.isoformat() if isinstance(value, dt.date) else str(value)
        return out


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def queue_queryset(filters: QueueFilters) -> QuerySet[Comparison]:
    """Cases matching the filters, unordered. Each filter is a column of Comparison with its own index."""
    qs = Comparison.objects.filter(study_date__isnull=False)
    if filters.date_from:
        qs = qs.filter(study_date__gte=_day_start(filters.date_from))
    if filters.date_to:
        qs = qs.filter(study_date__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    for name in ("specialty", "modality", "review_status", "radpeer_suggested"):
        value = getattr(filters, {"review_status": "status", "radpeer_suggested": "radpeer"}.get(name, name))
        if value:
            qs = qs.filter(**{name: value})
    if filters.model_version:
        qs = qs.filter(model_version_id=filters.model_version)
    if filters.significance == "significant":
        qs = qs.filter(significant_count__gt=0)
    elif filters.significance == "minor":
        qs = qs.filter(significant_count=0, minor_count__gt=0)
    elif filters.significance == "none":
        qs = qs.filter(significant_count=0, minor_count=0)
    if filters.category:
        qs = qs.filter(
            Exists(Discrepancy.objects.filter(comparison=OuterRef("pk"), category=filters.category))
        )
    if filters.reviewer:
        qs = qs.filter(
            Exists(Assignment.objects.filter(comparison=OuterRef("pk"), reviewer=filters.reviewer))
        )
    return qs


#: The queue counts its matches up to this many (a count of a million rows would cost every page view).
TOTAL_CAP = 10_000


def queue_total(filters: QueueFilters) -> tuple[int, bool]:
    """How many cases match the filters, and whether there are more than :data:`TOTAL_CAP`."""
    found = queue_queryset(filters).values("pk")[: TOTAL_CAP + 1].count()
    return min(found, TOTAL_CAP), found > TOTAL_CAP


def modality_choices(requested: str = "") -> list[str]:
    """The modality codes the data holds (read from the daily rollup, a few thousand rows), for the
    queue's controlled list. A code asked for that the rollup does not know yet (a case stored since
    its last refresh) is offered when a case has it, so a link to a new modality still works.
    """
    rollup = DailyStat.objects.filter(dimension=StatDimension.MODALITY).exclude(key="")
    codes = set(rollup.values_list("key", flat=True))
    requested = requested.strip().upper()[:16]
    if requested and requested not in codes and Comparison.objects.filter(modality=requested).exists():
        codes.add(requested)
    return sorted(codes)


def _key_values(comparison: Comparison, ordering: tuple[str, ...]) -> list[Any]:
    return [getattr(comparison, name.lstrip("-")) for name in ordering]


def encode_cursor(sort: str, values: list[Any]) -> str:
    """A signed, opaque "continue after this row" token (tampering gives a 400, not a wrong page)."""
    plain = [v.isoformat() if isinstance(v, dt.datetime) else v for v in values]
    return signing.dumps([sort, plain], salt=CURSOR_SALT, compress=True)


def decode_cursor(sort: str, token: str) -> list[Any]:
    """The key values of a cursor made by :func:`encode_cursor` for the same sort."""
    try:
        cursor_sort, values = signing.loads(token, salt=CURSOR_SALT)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise InvalidReview("The page cursor is not valid.", field="cursor") from exc
    ordering = SORTS[sort]
    if cursor_sort != sort or not isinstance(values, list) or len(values) != len(ordering):
        raise InvalidReview("The page cursor belongs to another sort order.", field="cursor")
    out = []
    for name, value in zip(ordering, values, strict=True):
        out.append(dt.datetime.fromisoformat(value) if name.lstrip("-") == "study_date" else value)
    return out


def _after(ordering: tuple[str, ...], values: list[Any], *, reverse: bool = False) -> Lookup:
    """Rows strictly after ``values`` in ``ordering`` (before them when ``reverse``).

    A row-value comparison, ``(study_date, id) < (%s, %s)``: PostgreSQL uses it as an index bound, so a
    page deep in the queue and the j/k neighbours of any case cost one index descent. (The equivalent
    ``a < x OR (a = x AND b < y)`` is not an index bound and can scan a million rows.)
    """
    descending = ordering[0].startswith("-") != reverse
    columns = Tuple(*(F(name.lstrip("-")) for name in ordering))
    return (TupleLessThan if descending else TupleGreaterThan)(columns, list(values))


@dataclasses.dataclass
class QueuePage:
    """One page of the queue: its rows, the reviewers assigned to them, and the next page's cursor."""

    rows: list[Comparison]
    assigned: dict[int, list[str]]
    next_cursor: str
    sort: str


def queue_page(
    filters: QueueFilters, *, sort: str = "-date", cursor: str = "", with_names: bool = False
) -> QueuePage:
    """One page of the queue in ``sort`` order after ``cursor`` (two queries, whatever the depth)."""
    ordering = SORTS[sort]
    qs = queue_queryset(filters).select_related("model_version")
    if with_names:
        qs = qs.select_related("radiologist", "clinician")
    if cursor:
        qs = qs.filter(_after(ordering, decode_cursor(sort, cursor)))
    rows = list(qs.order_by(*ordering)[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    assigned: dict[int, list[str]] = defaultdict(list)
    if rows:
        for comparison_id, username in Assignment.objects.filter(
            comparison_id__in=[r.pk for r in rows]
        ).values_list("comparison_id", "reviewer__username"):
            assigned[comparison_id].append(username)
    next_cursor = encode_cursor(sort, _key_values(rows[-1], ordering)) if more else ""
    return QueuePage(rows=rows, assigned=dict(assigned), next_cursor=next_cursor, sort=sort)


def queue_neighbours(
    comparison: Comparison, filters: QueueFilters, sort: str
) -> tuple[int | None, int | None]:
    """The previous and next case of ``comparison`` in the queue's order (for the j/k keys)."""
    ordering = SORTS[sort]
    values = _key_values(comparison, ordering)
    base = queue_queryset(filters)
    following = base.filter(_after(ordering, values)).order_by(*ordering).values_list("pk", flat=True)[:1]
    flipped = tuple(name[1:] if name.startswith("-") else f"-{name}" for name in ordering)
    preceding = (
        base.filter(_after(ordering, values, reverse=True))
        .order_by(*flipped)
        .values_list("pk", flat=True)[:1]
    )
    return (next(iter(preceding), None), next(iter(following), None))


# --- One case ---------------------------------------------------------------------------------------


def case_get(comparison_id: int) -> Comparison | None:
    """The case with the rows its page shows in one query (study, draft, model, report, radiologist)."""
    return (
        Comparison.objects.select_related(
            "study",
            "candidate",
            "candidate__model_version",
            "reference",
            "reference__radiologist",
            "radiologist",
            "clinician",
        )
        .filter(pk=comparison_id)
        .first()
    )


@dataclasses.dataclass
class CaseDetail:
    """Everything the case page shows besides the comparison itself."""

    discrepancies: list[Discrepancy]
    other_outputs: list[AIOutput]
    reviews: list[Review]
    feedback: list[Feedback]
    timeline: list[AuditEvent]
    assigned: list[str]


TIMELINE_LIMIT = 50


def case_detail(comparison: Comparison, *, with_timeline: bool) -> CaseDetail:
    """The discrepancies, the study's other AI outputs, reviews, feedback and audit timeline of a case."""
    discrepancies = list(comparison.discrepancies.order_by("pk"))
    other_outputs = list(
        AIOutput.objects.filter(study_id=comparison.study_id)
        .exclude(pk=comparison.candidate_id)
        .select_related("model_version")
        .order_by("-generated_at")[:20]
    )
    reviews = list(
        Review.objects.filter(comparison=comparison)
        .select_related("reviewer")
        .prefetch_related("verdicts")
        .order_by("-submitted_at", "-pk")
    )
    feedback = list(Feedback.objects.filter(comparison=comparison).order_by("-created_at"))
    timeline = (
        list(AuditEvent.objects.filter(study_id=comparison.study_id).order_by("-seq")[:TIMELINE_LIMIT])
        if with_timeline
        else []
    )
    assigned = list(
        Assignment.objects.filter(comparison=comparison).values_list("reviewer__username", flat=True)
    )
    return CaseDetail(discrepancies, other_outputs, reviews, feedback, timeline, assigned)


def adjudicators() -> list[AbstractBaseUser]:
    """Accounts that may be given cases to review (reviewers and chairs), by username."""
    names = [roles.Role.QA_REVIEWER.value, roles.Role.QA_CHAIR.value]
    return list(User.objects.filter(is_active=True, groups__name__in=names).distinct().order_by("username"))


# --- Dashboard ----------------------------------------------------------------------------------------

COMMITTEE_FIELDS = tuple(f"committee_{score}" for score in RADPEER_VALUES)
ATTRIBUTION_FIELDS = ("reviewed", "ai_errors", "radiologist_errors", "carried")
COUNT_FIELDS = (
    "studies",
    "ai_outputs",
    "compared",
    "with_discrepancy",
    "significant",
    "radpeer_1",
    "radpeer_2a",
    "radpeer_2b",
    "radpeer_3a",
    "radpeer_3b",
    *COMMITTEE_FIELDS,
    *ATTRIBUTION_FIELDS,
)


def _week(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def stats_series(dimension: str, key: str, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """Weekly sums of one breakdown (e.g. the department, or one radiologist) between two days."""
    weeks: dict[dt.date, dict[str, int]] = {}
    rows = DailyStat.objects.filter(dimension=dimension, key=key, day__gte=start, day__lte=end).values_list(
        "day", *COUNT_FIELDS
    )
    for day, *counts in rows:
        bucket = weeks.setdefault(_week(day), dict.fromkeys(COUNT_FIELDS, 0))
        for name, value in zip(COUNT_FIELDS, counts, strict=True):
            bucket[name] += value
    return [{"week": week, **weeks[week]} for week in sorted(weeks)]


def stats_breakdown(dimension: str, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """Totals per key of one breakdown between two days, largest first."""
    rows = (
        DailyStat.objects.filter(dimension=dimension, day__gte=start, day__lte=end)
        .values("key")
        .annotate(**{name: Sum(name) for name in COUNT_FIELDS})
        .order_by("-compared", "key")
    )
    return list(rows)


def stats_refreshed_at() -> dt.datetime | None:
    """When the figures were computed: the oldest row of the rollup (the pages' "as of").

    A review refreshes its case's day at once; the other days are as current as this time.
    """
    return DailyStat.objects.order_by("refreshed_at").values_list("refreshed_at", flat=True).first()


def committee_radpeer(start: dt.date, end: dt.date, radiologist_id: int | None = None) -> dict[str, int]:
    """The committee's current RADPEER scores (superseded reviews left out) of the period's cases.

    Read from the daily rollup, like every dashboard figure (as of its last refresh).
    """
    dimension, key = (
        (StatDimension.RADIOLOGIST, str(radiologist_id))
        if radiologist_id is not None
        else (StatDimension.ALL, "")
    )
    sums = DailyStat.objects.filter(dimension=dimension, key=key, day__gte=start, day__lte=end).aggregate(
        **{score: Sum(f"committee_{score}") for score in RADPEER_VALUES}
    )
    return {score: sums[score] or 0 for score in RADPEER_VALUES}


# --- Feedback and performance summaries -------------------------------------------------------------

FEEDBACK_LIMIT = 200


def feedback_for(user: AbstractBaseUser) -> list[Feedback]:
    """A radiologist's own feedback, newest first, with the review and case it came from."""
    return list(
        Feedback.objects.filter(radiologist=user)
        .select_related("review", "comparison")
        .order_by("-created_at", "-pk")[:FEEDBACK_LIMIT]
    )


@dataclasses.dataclass
class PerformanceRow:
    """One radiologist's OPPE/FPPE-style figures over a period."""

    radiologist_id: int
    name: str
    compared: int = 0
    with_discrepancy: int = 0
    significant: int = 0
    reviewed: int = 0
    radpeer: dict[str, int] = dataclasses.field(default_factory=dict)
    radiologist_errors: int = 0
    ai_errors: int = 0
    carried: int = 0
    feedback: int = 0
    acknowledged: int = 0

    @property
    def significant_rate(self) -> float:
        """Share of compared cases with a significant discrepancy (engine: AI draft vs signed report,
        whoever erred; not a measure of the radiologist)."""
        return self.significant / self.compared if self.compared else 0.0

    @property
    def major_discrepancy_rate(self) -> float:
        """Share of committee-reviewed cases where the radiologist's report scored 2b or 3b.

        Every reviewed case counts in the denominator: a case whose only error was the AI's is one
        the radiologist got right.
        """
        major = self.radpeer.get("2b", 0) + self.radpeer.get("3b", 0)
        return major / self.reviewed if self.reviewed else 0.0


def performance_summary(start: dt.date, end: dt.date) -> list[PerformanceRow]:
    """Per radiologist: cases compared, engine discrepancies, committee RADPEER scores, feedback.

    Three queries whatever the department's size: the daily rollup (case and score counts, as of its
    last refresh), the feedback (live, so acknowledgements show at once), the names.
    """
    rows: dict[int, PerformanceRow] = {}

    def row(radiologist_id: int) -> PerformanceRow:
        if radiologist_id not in rows:
            rows[radiologist_id] = PerformanceRow(
                radiologist_id, "", radpeer=dict.fromkeys(RADPEER_VALUES, 0)
            )
        return rows[radiologist_id]

    for item in stats_breakdown(StatDimension.RADIOLOGIST, start, end):
        if item["key"].isdigit():
            r = row(int(item["key"]))
            r.compared, r.with_discrepancy, r.significant = (
                item["compared"],
                item["with_discrepancy"],
                item["significant"],
            )
            r.radpeer = {score: item[f"committee_{score}"] or 0 for score in RADPEER_VALUES}
            r.reviewed = item["reviewed"] or 0
            r.radiologist_errors = item["radiologist_errors"] or 0
            r.ai_errors = item["ai_errors"] or 0
            r.carried = item["carried"] or 0
    in_period = Q(
        comparison__study_date__gte=_day_start(start),
        comparison__study_date__lt=_day_start(end + dt.timedelta(days=1)),
    )
    feedback = (
        Feedback.objects.filter(in_period)
        .values("radiologist_id")
        .annotate(n=Count("pk"), acked=Count("pk", filter=Q(acknowledged_at__isnull=False)))
    )
    for item in feedback:
        r = row(item["radiologist_id"])
        r.feedback, r.acknowledged = item["n"], item["acked"]
    names = User.objects.filter(pk__in=list(rows)).values_list("pk", "first_name", "last_name", "username")
    for pk, first, last, username in names:
        rows[pk].name = f"{first} {last}".strip() or username
    return sorted(rows.values(), key=lambda r: (r.name.lower(), r.radiologist_id))


# --- The model's figures (errors the committee attributed to the AI draft) ------------------------------


@dataclasses.dataclass
class ModelErrorRow:
    """Errors of the AI draft confirmed by the committee, for one model version and category."""

    model_version_id: int | None
    category: str
    specialty: str
    errors: int
    carried: int


def model_errors(start: dt.date, end: dt.date) -> list[ModelErrorRow]:
    """Verdicts of current reviews that blame the AI draft, per model version, category and specialty.

    The category is the committee's (a re-categorised discrepancy counts under its new category).
    Live: verdicts exist only for reviewed cases, a few thousand rows at most.
    """
    ai_erred = Q(correct_side=CorrectSide.SIGNED_REPORT) | Q(carried_into_report=True)
    rows = (
        DiscrepancyVerdict.objects.filter(
            ai_erred,
            ~Q(verdict=Verdict.NOT_A_DISCREPANCY),
            review__superseded_by__isnull=True,
            review__comparison__study_date__gte=_day_start(start),
            review__comparison__study_date__lt=_day_start(end + dt.timedelta(days=1)),
        )
        .values(
            "review__comparison__model_version_id",
            "category",
            "discrepancy__category",
            "review__comparison__specialty",
        )
        .annotate(n=Count("pk"), carried=Count("pk", filter=Q(carried_into_report=True)))
    )
    merged: dict[tuple[int | None, str, str], ModelErrorRow] = {}
    for row in rows:
        key = (
            row["review__comparison__model_version_id"],
            row["category"] or row["discrepancy__category"],
            row["review__comparison__specialty"],
        )
        target = merged.setdefault(key, ModelErrorRow(*key, errors=0, carried=0))
        target.errors += row["n"]
        target.carried += row["carried"]
    return sorted(merged.values(), key=lambda r: (-r.errors, r.category, r.specialty))


def user_ids_with_role(ids: Iterable[int], role: roles.Role) -> set[int]:
    """Which of ``ids`` hold ``role`` (one query)."""
    return set(User.objects.filter(pk__in=list(ids), groups__name=role.value).values_list("pk", flat=True))
