"""The training corpus: the department's signed reports beside the structured inputs of their AI drafts.

A training pair is ``prompt = build_prompt(kind, inputs)`` (the exact prompt live drafting and
re-inference use) and ``target`` = the text the model should write, taken from what the radiologist
signed (see :data:`TARGETS`). Pairs are chosen so that the model learns from inputs that were right:

* only original ``final`` reports (never addenda), and not those later amended by a correction;
* only studies with a clinical ``report_draft`` AI output (its ``inputs`` are the model's inputs);
* not studies whose AI draft and signed report disagree significantly per the discrepancy engine: the
  draft is a faithful rendering of its inputs, so a significant disagreement means the upstream inputs
  were wrong, and training on them would teach the model to contradict its inputs.

The evaluation split is held out by study (every kind of a study falls on the same side), decided by a
hash of the accession number, so it is the same whatever the database ids or the order of rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from inference.compare import analyse, compare
from inference.prompts import PromptError, build_prompt
from portal.records.models import AIOutput, AIOutputKind, AIOutputOrigin, ReportStatus, SignedReport

#: Held-out share of studies, in percent.
EVAL_PERCENT = 10
SPLIT_SALT = "concordance-eval:"

# The call-back note names a physician and a time that no input carries: a model cannot know them,
# and the radiologist adds it after phoning, so it is not part of a draft.
_CRITICAL_CALL = re.compile(r"^\s*critical result communicated\b.*$", re.IGNORECASE | re.MULTILINE)


def report_draft_target(sections: Mapping[str, str]) -> str:
    """Findings and impression as signed (headers in the drafts' fixed form), less the call-back note."""
    findings = str(sections.get("findings") or "").strip()
    impression = _CRITICAL_CALL.sub("", str(sections.get("impression") or "")).strip()
    if not findings or not impression:
        return ""
    return f"FINDINGS:\n{findings}\n\nIMPRESSION:\n{impression}"


def history_summary_target(sections: Mapping[str, str]) -> str:
    """The clinical history the radiologist signed (the indication section)."""
    return str(sections.get("indication") or "").strip()


def prior_comparison_target(sections: Mapping[str, str]) -> str:
    """The sentences of the signed findings that describe a change since the prior study.

    Found with the discrepancy engine's own extractor, so what the model learns to write is exactly what
    the engine later reads as a comparison. Empty when no sentence states a change.
    """
    findings = str(sections.get("findings") or "")
    sentences: list[str] = []
    for finding in analyse(findings):
        if finding.change and finding.sentence not in sentences:
            sentences.append(finding.sentence)
    return " ".join(s.strip() for s in sentences)


@dataclass(frozen=True)
class TargetRule:
    """How the target of one kind is made, and which studies can have one."""

    build: Callable[[Mapping[str, str]], str]
    description: str
    needs_prior: bool = False
    #: Keep this kind for one study in ``every`` (by a hash of the accession): a short answer after a
    #: long prompt is cheap to learn and expensive to train on, so not every study needs to teach it.
    every: int = 1


#: The kinds the signed reports can teach; ``patient_letter`` has no source in a signed report.
TARGETS: dict[str, TargetRule] = {
    AIOutputKind.REPORT_DRAFT.value: TargetRule(
        report_draft_target,
        "the signed FINDINGS and IMPRESSION sections (headers written 'FINDINGS:'/'IMPRESSION:'), "
        "without the critical-result call-back note",
    ),
    AIOutputKind.HISTORY_SUMMARY.value: TargetRule(
        history_summary_target,
        "the signed indication / clinical history section (one study in four)",
        every=4,
    ),
    AIOutputKind.PRIOR_COMPARISON.value: TargetRule(
        prior_comparison_target,
        "the sentences of the signed findings that state a change since the prior study "
        "(studies with a prior and at least one such sentence)",
        needs_prior=True,
    ),
}


@dataclass(frozen=True)
class Pair:
    """One training or evaluation example."""

    kind: str
    study_id: int
    report_id: int
    accession: str
    prompt: str
    target: str
    split: str  # "train" or "eval"


@dataclass
class Corpus:
    """The chosen pairs and the account of how they were chosen (the card's lineage)."""

    pairs: list[Pair]
    lineage: dict[str, Any] = field(default_factory=dict)

    def of(self, split: str, kind: str | None = None) -> list[Pair]:
        """The pairs of one split (and kind), in their stable order."""
        return [p for p in self.pairs if p.split == split and (kind is None or p.kind == kind)]

    @property
    def kinds(self) -> list[str]:
        """Kinds with at least one training and one evaluation pair, in TARGETS order."""
        return [k for k in TARGETS if self.of("train", k) and self.of("eval", k)]


def split_of(accession: str, eval_percent: int = EVAL_PERCENT) -> str:
    """``"eval"`` for about ``eval_percent`` % of studies, chosen by a hash of the accession number."""
    bucket = int(hashlib.sha256((SPLIT_SALT + accession).encode("utf-8")).hexdigest()[:8], 16) % 100
    return "eval" if bucket < eval_percent else "train"


def _sampled(accession: str, every: int) -> bool:
    if every <= 1:
        return True
    return int(hashlib.sha256(("kind-sample:" + accession).encode("utf-8")).hexdigest()[:8], 16) % every == 0


def ids_digest(ids: Iterable[int]) -> str:
    """SHA-256 of the sorted ids, comma separated: names a set of reports without listing them."""
    return hashlib.sha256(",".join(str(i) for i in sorted(ids)).encode("ascii")).hexdigest()


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _final_reports(specialties: Sequence[str], since: dt.date | None, until: dt.date | None) -> QuerySet:
    """The original final reports of ``specialties`` signed between ``since`` and ``until`` (inclusive)."""
    reports = SignedReport.objects.filter(status=ReportStatus.FINAL, study__specialty__in=list(specialties))
    if since is not None:
        reports = reports.filter(signed_at__date__gte=since)
    if until is not None:
        reports = reports.filter(signed_at__date__lte=until)
    return reports


def _first_clinical_drafts(reports: QuerySet) -> dict[int, tuple[dict[str, Any], str]]:
    """Per study, the inputs and text of its first clinical report draft (the one the radiologist read)."""
    drafts: dict[int, tuple[dict[str, Any], str]] = {}
    draft_rows = (
        AIOutput.objects.filter(
            study_id__in=reports.values("study_id"),
            kind=AIOutputKind.REPORT_DRAFT,
            origin=AIOutputOrigin.CLINICAL,
        )
        .order_by("study_id", "generated_at", "id")
        .values_list("study_id", "inputs", "text")
    )
    for study_id, inputs, text in draft_rows.iterator(chunk_size=2000):
        drafts.setdefault(study_id, (inputs, text))
    return drafts


@dataclass
class _Selection:
    """What the reading kept and left out."""

    pairs: list[Pair] = field(default_factory=list)
    used: list[int] = field(default_factory=list)
    signed_dates: list[dt.datetime] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)


def _pairs_of_report(
    wanted: list[str], inputs: dict[str, Any], sections: dict[str, Any], base: tuple, selection: _Selection
) -> int:
    """The training pairs of one kept report (``base``: study id, report id, accession, split)."""
    study_id, report_id, accession, split = base
    made = 0
    for kind in wanted:
        rule = TARGETS[kind]
        if rule.needs_prior and not inputs.get("prior_report_accession"):
            continue
        if not _sampled(accession, rule.every):
            continue
        try:
            prompt = build_prompt(kind, inputs)
        except PromptError:
            selection.excluded["inputs_not_promptable"] += 1
            break
        target = rule.build(sections or {})
        if target:
            selection.pairs.append(Pair(kind, study_id, report_id, accession, prompt, target, split))
            made += 1
    return made


def corpus_build(
    *,
    specialties: Sequence[str],
    since: dt.date | None = None,
    until: dt.date | None = None,
    eval_percent: int = EVAL_PERCENT,
    kinds: Sequence[str] | None = None,
) -> Corpus:
    """Read the department's signed reports (``since``/``until``: signing dates, inclusive) into pairs.

    Read-only. The result's ``lineage`` records what was read, what was left out and why.
    """
    wanted = [k for k in TARGETS if kinds is None or k in kinds]
    reports = _final_reports(specialties, since, until)
    corrected = set(
        SignedReport.objects.filter(status=ReportStatus.CORRECTION, amends__in=reports).values_list(
            "amends_id", flat=True
        )
    )
    rows = list(
        reports.order_by("study__accession_number").values_list(
            "id", "study_id", "study__accession_number", "sections", "text", "signed_at"
        )
    )
    drafts = _first_clinical_drafts(reports)
    selection = _Selection()
    for report_id, study_id, accession, sections, text, signed_at in rows:
        if report_id in corrected:
            selection.excluded["corrected_later"] += 1
            continue
        if study_id not in drafts:
            selection.excluded["no_ai_draft"] += 1
            continue
        inputs, draft_text = drafts[study_id]
        if compare(draft_text, text).significant:
            selection.excluded["draft_disagrees_significantly"] += 1
            continue
        base = (study_id, report_id, accession, split_of(accession, eval_percent))
        if _pairs_of_report(wanted, inputs, sections, base, selection):
            selection.used.append(report_id)
            selection.signed_dates.append(signed_at)
    read = {"specialties": specialties, "since": since, "until": until, "reports_read": len(rows)}
    return Corpus(pairs=selection.pairs, lineage=_lineage(selection, wanted, read, eval_percent))


def _lineage(
    selection: _Selection, wanted: list[str], read: dict[str, Any], eval_percent: int
) -> dict[str, Any]:
    """What was read (``read``: specialties, since, until, reports_read), used, left out and why, and
    how the split was made."""
    pairs, used, signed_dates = selection.pairs, selection.used, selection.signed_dates
    per_kind = {
        kind: {
            "train": sum(1 for p in pairs if p.kind == kind and p.split == "train"),
            "eval": sum(1 for p in pairs if p.kind == kind and p.split == "eval"),
        }
        for kind in wanted
    }
    return {
        "source": "signed reports (original finals, not addenda) with the structured inputs of the "
        "study's clinical report_draft AI output",
        "database_vendor": connection.vendor,
        "specialties": sorted(read["specialties"]),
        "since": _iso(read["since"]),
        "until": _iso(read["until"]),
        "reports_read": read["reports_read"],
        "reports_used": len(used),
        "report_ids_sha256": ids_digest(used),
        "report_ids_rule": "sha256 of the sorted SignedReport ids, comma separated",
        "signed_at_first": _iso(min(signed_dates)) if signed_dates else None,
        "signed_at_last": _iso(max(signed_dates)) if signed_dates else None,
        "excluded": dict(sorted(selection.excluded.items())),
        "selection": "a study is left out when the discrepancy engine finds a significant discrepancy "
        "between its AI draft and its signed report (the inputs were wrong), when its final report was "
        "later corrected, or when it has no clinical report_draft",
        "split": {
            "rule": f"sha256('{SPLIT_SALT}' + accession number), first 32 bits mod 100 < {eval_percent}",
            "eval_percent": eval_percent,
            "train_studies": len({p.study_id for p in pairs if p.split == "train"}),
            "eval_studies": len({p.study_id for p in pairs if p.split == "eval"}),
        },
        "pairs": per_kind,
        "targets": {kind: TARGETS[kind].description for kind in wanted},
    }
