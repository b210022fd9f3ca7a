"""Reads of re-inference runs that grow: model look-up, progress, results, the run summary and its charts."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.utils import timezone
from django.utils.safestring import SafeString

from inference.compare import RADPEER_SCORES
from inference.models import ChunkStatus, ReinferenceResult, ReinferenceRun, ResultStatus
from inference.reinference.liveness import run_liveness
from inference.reinference.summary import latency_percentiles, rate, side_summary
from portal.core.charts import paired_bar_chart
from portal.core.errors import InvalidRecord, RecordError
from portal.records.models import ModelVersion

_REFERENCE = re.compile(r"^(?P<name>[^:\s]{1,128}):(?P<version>[^:\s]{1,64})$")


def model_version_by_reference(
    reference: str | int,
    *,
    allow_id: bool = True,
    field: str = "model",
    error: type[RecordError] = InvalidRecord,
) -> ModelVersion:
    """The ONE reading of a model reference: ``"NAME:VERSION"``, or (``allow_id``) the version's id.

    A malformed or unknown reference raises ``error`` on ``field``: 400 (:class:`InvalidRecord`) where the
    reference is a parameter of the request, 404 (:class:`RecordNotFound`) where it names a resource.
    """
    if allow_id and isinstance(reference, str) and reference.isascii() and reference.isdigit():
        reference = int(reference) if len(reference) < 19 else -1
    if allow_id and isinstance(reference, int) and not isinstance(reference, bool):
        mv = ModelVersion.objects.filter(pk=reference).first()
        missing = "No model version has this id."
    elif isinstance(reference, str) and (match := _REFERENCE.match(reference)):
        mv = ModelVersion.objects.filter(name=match["name"], version=match["version"]).first()
        missing = "No model version has this name and version."
    else:
        accepted = "NAME:VERSION or a model version id" if allow_id else "NAME:VERSION"
        raise error(f"A model is given as {accepted}.", field=field)
    if mv is None:
        raise error(missing, field=field)
    return mv


def model_versions() -> QuerySet[ModelVersion]:
    """The registry, each version with its parent (the model pages list and show them)."""
    return ModelVersion.objects.select_related("parent")


def runnable_versions() -> list[ModelVersion]:
    """Versions with local artifacts (those a run can use), newest first. The registry is small."""
    return [mv for mv in ModelVersion.objects.exclude(artifact_dir="").order_by("-pk") if mv.is_runnable]


def runs_list() -> QuerySet[ReinferenceRun]:
    """Every run with its model version (one query per page)."""
    return ReinferenceRun.objects.select_related("model_version", "created_by")


def run_results(run: ReinferenceRun, *, status: str | None = None) -> QuerySet[ReinferenceResult]:
    """A run's results, optionally only ``ok`` or ``failed`` ones."""
    qs = ReinferenceResult.objects.filter(run=run).select_related("study")
    if status is not None:
        qs = qs.filter(status=status)
    return qs


def chunk_counts(run: ReinferenceRun) -> dict[str, int]:
    """How many of the run's chunks are pending, running (leased), done and skipped."""
    counts = dict(run.chunks.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    return {value: counts.get(value, 0) for value in ChunkStatus.values}


def run_progress(run: ReinferenceRun, *, now: Any = None, liveness: bool = True) -> dict[str, Any]:
    """Done, failed, total, rate (studies per second since the first chunk started) and ETA in seconds.

    ``liveness`` says what the counters cannot (:func:`run_liveness`): chunks lost with their worker
    and when they are retried (the ETA counts that wait), or that no worker is taking work. Lists of
    runs leave it out (``liveness=False``, None): it costs two queries per run.
    """
    now = now or timezone.now()
    state = run_liveness(run, now=now) if liveness else None
    processed = run.done + run.failed
    remaining = max(0, run.total - processed)
    elapsed = None
    studies_per_second = None
    eta = None
    if run.started_at is not None:
        end = run.finished_at or now
        elapsed = max(0.0, (end - run.started_at).total_seconds())
        if elapsed > 0 and processed:
            studies_per_second = round(processed / elapsed, 3)
            if run.is_active and (state is None or state.workers != "none"):  # no worker: no estimate
                eta = round(remaining / (processed / elapsed) + (state.wait_seconds(now) if state else 0), 1)
    return {
        "done": run.done,
        "failed": run.failed,
        "total": run.total,
        "remaining": remaining if run.is_active else 0,
        "percent": round(100.0 * processed / run.total, 1) if run.total else 100.0,
        "elapsed_seconds": None if elapsed is None else round(elapsed, 1),
        "rate_per_second": studies_per_second,
        "eta_seconds": eta,
        "liveness": state.as_dict() if state else None,
    }


def run_summary(run: ReinferenceRun) -> dict[str, Any]:
    """The new version against the original model on the same studies, both judged by the signed reports.

    Only studies the new version generated (``ok``) are compared, so both sides cover the same cohort.
    Per side: significant discrepancies per study by category, the share of studies with one, and the
    RADPEER-suggested distribution; plus the reproduction rate (same version only), latency percentiles
    and throughput (tokens and reports per second of generation time).
    """
    rows = list(
        ReinferenceResult.objects.filter(run=run, status=ResultStatus.OK).values_list(
            "categories",
            "radpeer_suggested",
            "significant_count",
            "original_categories",
            "original_radpeer",
            "original_significant_count",
            "reproduced",
            "latency_ms",
            "completion_tokens",
            "original__latency_ms",
            "original__completion_tokens",
            "original__model_version_id",
        )
    )
    new_side = side_summary([(r[0], r[1], r[2]) for r in rows])
    original_side = side_summary([(r[3], r[4], r[5]) for r in rows])
    judged = [r[6] for r in rows if r[6] is not None]
    generation = run.chunks.filter(status=ChunkStatus.DONE, generation_ms__isnull=False).aggregate(
        ms=Sum("generation_ms")
    )["ms"]
    new_tokens = sum(r[8] or 0 for r in rows)
    original_timed = [(r[9], r[10]) for r in rows if r[9] and r[10] is not None]
    original_ms = sum(ms for ms, _tokens in original_timed)
    failures = Counter(
        error.split(":", 1)[0]
        for error in ReinferenceResult.objects.filter(run=run, status=ResultStatus.FAILED).values_list(
            "error", flat=True
        )
    )
    return {
        "run": run.pk,
        "status": run.status,
        "model_version": {
            "id": run.model_version_id,
            "name": run.model_version.name,
            "version": run.model_version.version,
        },
        "original_model_versions": sorted({r[11] for r in rows}),
        "kind": run.kind,
        "studies_compared": len(rows),
        "studies_failed": run.failed,
        "failure_reasons": dict(failures.most_common(10)),
        "new": new_side,
        "original": original_side,
        "significant_per_study_delta": round(
            new_side["significant_per_study"] - original_side["significant_per_study"], 4
        ),
        "reproduction": {
            "judged": len(judged),
            "reproduced": sum(judged),
            "rate": rate(sum(judged), len(judged)),
        },
        "latency_ms": {
            "new": latency_percentiles(r[7] for r in rows),
            "original": latency_percentiles(r[9] for r in rows),
        },
        "throughput": {
            "generation_seconds": None if generation is None else round(generation / 1000.0, 3),
            "tokens_per_second": round(new_tokens / (generation / 1000.0), 1) if generation else None,
            "reports_per_second": round(len(rows) / (generation / 1000.0), 2) if generation else None,
            "original_tokens_per_second": (
                round(sum(t for _ms, t in original_timed) / (original_ms / 1000.0), 1)
                if original_ms
                else None
            ),
        },
    }


def run_summary_charts(summary: dict[str, Any]) -> dict[str, SafeString]:
    """The results page's two charts: significant discrepancies per study by category, and RADPEER."""
    new, original = summary["new"], summary["original"]
    new_cat = new["significant_per_study_by_category"]
    orig_cat = original["significant_per_study_by_category"]
    categories = [c for c in sorted(set(new_cat) | set(orig_cat)) if new_cat.get(c) or orig_cat.get(c)]
    category_rows = [
        (c.replace("_", " "), float(new_cat.get(c, 0.0)), float(orig_cat.get(c, 0.0))) for c in categories
    ] or [("none", 0.0, 0.0)]
    scores = list(RADPEER_SCORES) + sorted(
        (set(new["radpeer_suggested"]) | set(original["radpeer_suggested"])) - set(RADPEER_SCORES)
    )
    radpeer_rows = [
        (
            f"RADPEER {s}",
            float(new["radpeer_suggested"].get(s, 0)),
            float(original["radpeer_suggested"].get(s, 0)),
        )
        for s in scores
    ]
    return {
        "category_chart": paired_bar_chart(
            "Significant discrepancies per study, by category", category_rows, chart_id="chart-categories"
        ),
        "radpeer_chart": paired_bar_chart(
            "Suggested RADPEER scores (studies)", radpeer_rows, chart_id="chart-radpeer"
        ),
    }
