"""Operations pages of the inference app: re-inference runs (launch, live progress, results) and models.

Thin, like the review pages: each view asks :mod:`portal.accounts.roles` first (refusals are audited),
validates with a form, reads through :mod:`inference.selectors` and writes through
:mod:`inference.reinference.runs` and :mod:`inference.registry`, which audit every change. The run page
polls a small partial while the run is active; the poll is a background request (it does not keep an
idle session alive) and stops by itself once the run has ended, because the finished partial no longer
carries the polling attributes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit import log as audit
from inference import model_card, registry, selectors
from inference.models import ReinferenceRun
from inference.reinference import runs as run_workflows
from inference.reinference.cohort import (
    MAX_SAMPLE,
    MAX_SEED,
    CohortFilter,
    modalities_in_data,
    modality_label,
)
from portal.accounts import roles
from portal.core.access import deny
from portal.core.errors import InvalidRecord, RecordConflict
from portal.records.models import AIOutputKind, ModelStatus, ModelVersion, Specialty

RUNS_PER_PAGE = 25
RESULTS_PER_PAGE = 25
#: How often the run page asks for fresh progress while the run is active (htmx ``every`` syntax).
POLL_EVERY = "1s"


def _cursor(request: HttpRequest, name: str) -> int | None:
    """A keyset cursor (a primary key) from the query string; None when absent, 404 when malformed."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) < 19):
        raise Http404
    return int(raw)


# --- Forms ----------------------------------------------------------------------------------------------


class KindSelect(forms.Select):
    """The kind list: each option names the model versions that can draft it (``data-versions``), so the
    page's script offers only the kinds of the chosen version; the form checks the pair again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.servers: dict[str, list[int]] = {}

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        versions = self.servers.get(str(option["value"]))
        if versions is not None:
            option["attrs"]["data-versions"] = " ".join(str(pk) for pk in versions)
        return option


def _kinds_served(mv: ModelVersion) -> list[str]:
    """The kinds a version can draft, from its card; a version naming none is unrestricted."""
    return list(mv.kinds) if mv.kinds else list(AIOutputKind.values)


class RunForm(forms.Form):
    """The launch form: a runnable model version, a kind it can draft, and the cohort filter.

    Kinds and modalities are controlled lists: the kinds the runnable versions' cards name (never one no
    version here can draft, such as a patient letter nothing was trained for) and the modality codes the
    stored studies carry (the data says "CR", so a typed "XR" cannot become an empty cohort).
    """

    model_version = forms.TypedChoiceField(coerce=int, label="Model version")
    kind = forms.ChoiceField(widget=KindSelect, initial=AIOutputKind.REPORT_DRAFT)
    specialty = forms.ChoiceField(choices=[("", "Any"), *Specialty.choices], required=False)
    modality = forms.ChoiceField(
        required=False,
        error_messages={
            "invalid_choice": "%(value)s is not a modality of the stored studies: choose a DICOM modality "
            "code from the list."
        },
    )
    date_from = forms.DateField(
        required=False, label="Studies from", widget=forms.DateInput({"type": "date"})
    )
    date_to = forms.DateField(required=False, label="Studies to", widget=forms.DateInput({"type": "date"}))
    radiologist = forms.RegexField(
        regex=r"^[\w.@+-]{1,150}$",
        required=False,
        max_length=150,
        error_messages={"invalid": "A user name."},
        label="Signed by (user name)",
    )
    sample = forms.IntegerField(min_value=1, max_value=MAX_SAMPLE, required=False, label="Random sample of")
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, required=False, initial=0)
    chunk_size = forms.IntegerField(min_value=1, max_value=1024, required=False, label="Studies per chunk")

    def __init__(
        self, *args: Any, versions: Sequence[ModelVersion], modalities: Sequence[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.versions = {mv.pk: mv for mv in versions}
        self.fields["model_version"].choices = [
            (mv.pk, f"{mv.name} {mv.version} ({mv.get_status_display().lower()})") for mv in versions
        ]
        servers: dict[str, list[int]] = {}
        for mv in versions:
            for kind in _kinds_served(mv):
                servers.setdefault(kind, []).append(mv.pk)
        kind_field = self.fields["kind"]
        kind_field.choices = [(value, label) for value, label in AIOutputKind.choices if value in servers]
        kind_field.widget.servers = servers
        self.fields["modality"].choices = [("", "Any")] + [
            (code, modality_label(code)) for code in modalities
        ]

    def clean(self) -> dict[str, Any]:
        """The kind must be one the chosen version can draft (the list offers only those, scripts aside)."""
        data = super().clean()
        mv = self.versions.get(data.get("model_version", 0))
        kind = data.get("kind")
        if mv is not None and kind and kind not in _kinds_served(mv):
            labels = dict(AIOutputKind.choices)
            drafts = ", ".join(str(labels.get(k, k)) for k in _kinds_served(mv))
            wanted = str(labels[kind]).lower()
            self.add_error("kind", f"{mv.name} {mv.version} cannot draft a {wanted}; it drafts: {drafts}.")
        return data

    def cohort(self) -> CohortFilter:
        """The cohort filter of a valid form (raises InvalidRecord for a contradictory one)."""
        data = self.cleaned_data
        return CohortFilter(
            specialty=data["specialty"] or "",
            modality=data["modality"] or "",
            date_from=data["date_from"],
            date_to=data["date_to"],
            radiologist=data["radiologist"] or "",
            sample=data["sample"],
            seed=data["seed"] or 0,
        )


def _run_form(data: Any = None) -> RunForm:
    """The launch form over the runnable versions and the modalities of the stored studies."""
    return RunForm(data, versions=selectors.runnable_versions(), modalities=modalities_in_data())


# --- Re-inference runs ----------------------------------------------------------------------------------


_COHORT_LABELS = {
    "specialty": "Specialty",
    "modality": "Modality",
    "date_from": "Studies from",
    "date_to": "Studies to",
    "radiologist": "Signed by",
    "sample": "Random sample of",
    "seed": "Seed",
}


def _cohort_chips(run: ReinferenceRun) -> list[tuple[str, str]]:
    """The run's stored cohort filter as (label, value) pairs, in the launch form's order."""
    stored = run.cohort_filter if isinstance(run.cohort_filter, dict) else {}
    specialties = dict(Specialty.choices)
    chips = []
    for key, name in _COHORT_LABELS.items():
        if key not in stored:
            continue
        value = str(stored[key])
        if key == "specialty":
            value = str(specialties.get(value, value))
        elif key == "modality":
            value = modality_label(value)
        chips.append((name, value))
    return chips


def _run_or_404(pk: int) -> ReinferenceRun:
    run = selectors.runs_list().filter(pk=pk).first()
    if run is None:
        raise Http404
    return run


def _runs_page(request: HttpRequest, form: RunForm | None, *, status: int = 200) -> HttpResponse:
    """The run list (newest first, keyset on id) with the launch form for those who may run."""
    before = _cursor(request, "before")
    runs_qs = selectors.runs_list().order_by("-pk")
    if before is not None:
        runs_qs = runs_qs.filter(pk__lt=before)
    runs = list(runs_qs[: RUNS_PER_PAGE + 1])
    more = len(runs) > RUNS_PER_PAGE
    runs = runs[:RUNS_PER_PAGE]
    rows = [
        {"run": run, "progress": selectors.run_progress(run, liveness=False), "cohort": _cohort_chips(run)}
        for run in runs
    ]
    return render(
        request,
        "inference/runs.html",
        {
            "rows": rows,
            "next_before": runs[-1].pk if more else None,
            "form": form,
            "can_run": form is not None,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def runs(request: HttpRequest) -> HttpResponse:
    """GET lists runs (and shows the launch form to QA chairs and admins); POST launches a run."""
    if not roles.can_view_reinference(request.user):
        deny(request, reason="reinference.view")
    may_run = roles.can_run_reinference(request.user)
    if request.method == "POST":
        if not may_run:
            deny(request, reason="reinference.run")
        form = _run_form(request.POST)
        if form.is_valid():
            try:
                run = run_workflows.reinference_run_create(
                    model_version=form.cleaned_data["model_version"],
                    kind=form.cleaned_data["kind"],
                    cohort=form.cohort(),
                    chunk_size=form.cleaned_data["chunk_size"],
                    actor=request.user,
                    context=audit.AuditContext.from_request(request),
                )
            except InvalidRecord as exc:
                field = exc.field if exc.field in form.fields else None
                form.add_error(field, str(exc))
            else:
                messages.success(request, f"Run {run.pk} started over {run.total} studies.")
                return redirect("reinference-run", pk=run.pk)
        return _runs_page(request, form, status=400)
    form = _run_form() if may_run else None
    return _runs_page(request, form)


def _progress_context(run: ReinferenceRun) -> dict[str, Any]:
    return {
        "run": run,
        "progress": selectors.run_progress(run),
        "chunks": selectors.chunk_counts(run),
        "poll_every": POLL_EVERY,
    }


@login_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: live progress, cancel button, and once results exist the summary, charts and results."""
    if not roles.can_view_reinference(request.user):
        deny(request, reason="reinference.view")
    run = _run_or_404(pk)
    after = _cursor(request, "after")
    context = _progress_context(run)
    context["cohort"] = _cohort_chips(run)
    context["can_run"] = roles.can_run_reinference(request.user)
    if run.done or run.failed:
        summary = selectors.run_summary(run)
        context["summary"] = summary
        context.update(selectors.run_summary_charts(summary))
        results_qs = selectors.run_results(run).order_by("pk")
        if after is not None:
            results_qs = results_qs.filter(pk__gt=after)
        results = list(results_qs[: RESULTS_PER_PAGE + 1])
        more = len(results) > RESULTS_PER_PAGE
        results = results[:RESULTS_PER_PAGE]
        # Result rows show report texts: reading them is an access to patient data like any other.
        with transaction.atomic():
            audit.record(
                "reinference_result.list",
                actor=request.user,
                context=audit.AuditContext.from_request(request),
                object_type="reinference_run",
                object_id=run.pk,
                details={"ids": [r.pk for r in results], "studies": [r.study_id for r in results]},
            )
        context["results"] = results
        context["next_after"] = results[-1].pk if more and results else None
    return render(request, "inference/run.html", context)


@login_required
@require_GET
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress partial the run page polls (it stops polling once the run has ended)."""
    if not roles.can_view_reinference(request.user):
        deny(request, reason="reinference.view")
    run = _run_or_404(pk)
    return render(request, "inference/_progress.html", _progress_context(run))


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a queued or running run (QA chair, admin); a run that has ended says so."""
    if not roles.can_run_reinference(request.user):
        deny(request, reason="reinference.cancel")
    run = _run_or_404(pk)
    try:
        run_workflows.reinference_run_cancel(
            run=run, actor=request.user, context=audit.AuditContext.from_request(request)
        )
    except RecordConflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run.pk} cancelled.")
    return redirect("reinference-run", pk=run.pk)


# --- Models ---------------------------------------------------------------------------------------------


def _model_or_404(pk: int) -> ModelVersion:
    mv = selectors.model_versions().filter(pk=pk).first()
    if mv is None:
        raise Http404
    return mv


#: Card entries the model page shows in its own sections; the rest is listed under "Build".
_CARD_SHOWN = frozenset(
    {"name", "version", "architecture", "kinds", "kinds_left_out", "specialties", "quantisation"}
    | {"files", "metrics", "lineage", "generation_defaults"}
)


def _kinds_not_served(mv: ModelVersion) -> list[str]:
    """Labels of the kinds this version cannot draft (none when it names no kinds: it is unrestricted)."""
    if not mv.kinds:
        return []
    return [str(label) for value, label in AIOutputKind.choices if value not in mv.kinds]


@login_required
@require_GET
def models(request: HttpRequest) -> HttpResponse:
    """Registered model versions: status, kinds, specialties, headline metrics and the artifact hash."""
    if not roles.can_view_models(request.user):
        deny(request, reason="models.view")
    rows = [
        {
            "mv": mv,
            "kinds": model_card.labels_of(mv.kinds),
            "specialties": model_card.labels_of(mv.specialties),
            "headline": model_card.headline(mv.metrics),
        }
        for mv in selectors.model_versions().order_by("name", "-pk")
    ]
    return render(
        request,
        "inference/models.html",
        {"rows": rows, "can_manage": roles.can_manage_models(request.user)},
    )


@login_required
@require_GET
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The model card: lineage, metrics, settings, every artifact file with its SHA-256, integrity now."""
    if not roles.can_view_models(request.user):
        deny(request, reason="models.view")
    mv = _model_or_404(pk)
    problems = registry.integrity_problems(mv) if mv.is_runnable else None
    card = mv.card if isinstance(mv.card, dict) else {}
    return render(
        request,
        "inference/model.html",
        {
            "mv": mv,
            "kinds": model_card.labels_of(mv.kinds),
            "kinds_not_served": _kinds_not_served(mv),
            "specialties": model_card.labels_of(mv.specialties),
            "metrics": model_card.readable(mv.metrics or {}),
            "lineage": model_card.readable(mv.lineage or {}),
            "defaults": model_card.readable(mv.generation_defaults or {}),
            "build": model_card.readable({k: v for k, v in card.items() if k not in _CARD_SHOWN}),
            "artifacts": sorted((mv.artifacts or {}).items()),
            "card_json": json.dumps(mv.card or {}, indent=2, sort_keys=True, ensure_ascii=False),
            "problems": problems,
            "can_manage": roles.can_manage_models(request.user),
            "can_activate": mv.is_runnable and mv.status != ModelStatus.ACTIVE,
        },
    )


@login_required
@require_POST
def model_activate(request: HttpRequest, pk: int) -> HttpResponse:
    """Make this version the one that serves its specialties and kinds (the registry audits it)."""
    if not roles.can_manage_models(request.user):
        deny(request, reason="models.activate")
    mv = _model_or_404(pk)
    try:
        registry.model_version_activate(
            model_version=mv, actor=request.user, context=audit.AuditContext.from_request(request)
        )
    except (InvalidRecord, RecordConflict) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{mv.name} {mv.version} is now active.")
    return redirect("model", pk=mv.pk)
