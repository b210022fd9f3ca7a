"""The prompt contract between the stored inputs of an AI output and the local drafting model.

Training (``inference.training``), live drafting and re-inference all turn an output's structured
inputs into model text with :func:`build_prompt`, so a stored draft can be regenerated from its stored
inputs alone. The format is deliberately plain text: one task prefix per AI output kind, then one
``key: value`` line per input, findings and negatives one per line, in the order the sender gave them
(order is part of what the model considered). The model writes its answer after :data:`ANSWER_MARK`
and stops at its end-of-text token.

Pure Python: no Django, no numpy; importable by the training extra and the worker alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: One task prefix per kind; a model card lists the kinds it was trained for.
TASK_PREFIXES: dict[str, str] = {
    "report_draft": "<draft_report>",
    "history_summary": "<summarise_history>",
    "prior_comparison": "<compare_prior>",
    "patient_letter": "<patient_letter>",
}

#: Where the prompt ends and the model's answer begins.
ANSWER_MARK = "<answer>"

#: Refuse prompts that could not come from a real study: keeps a hostile payload from tying up a worker.
MAX_FINDINGS = 64
MAX_FIELD_CHARS = 512

_FINDING_FIELDS = ("laterality", "location", "size_mm", "severity", "change", "certainty")


class PromptError(ValueError):
    """The inputs cannot be turned into a prompt (unknown kind, missing or malformed fields)."""


def _clean(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PromptError(f"{field} must be text or a number")
    text = " ".join(str(value).split())
    if len(text) > MAX_FIELD_CHARS:
        raise PromptError(f"{field} is longer than {MAX_FIELD_CHARS} characters")
    return text


def _finding_line(finding: Any, index: int) -> str:
    if not isinstance(finding, Mapping):
        raise PromptError(f"findings[{index}] must be an object")
    name = _clean(finding.get("display") or finding.get("concept"), f"findings[{index}].display")
    if not name:
        raise PromptError(f"findings[{index}] needs a display or concept")
    parts = [name]
    for field in _FINDING_FIELDS:
        value = _clean(finding.get(field), f"findings[{index}].{field}")
        if value:
            parts.append(f"{field}={value}{' mm' if field == 'size_mm' else ''}")
    if finding.get("critical") is True:
        parts.append("critical")
    return "finding: " + "; ".join(parts)


def _negative_line(negative: Any, index: int) -> str:
    if isinstance(negative, str):
        name = _clean(negative, f"negatives[{index}]")
    elif isinstance(negative, Mapping):
        name = _clean(negative.get("display") or negative.get("concept"), f"negatives[{index}].display")
    else:
        raise PromptError(f"negatives[{index}] must be text or an object")
    if not name:
        raise PromptError(f"negatives[{index}] is empty")
    return f"negative: {name}"


def _list(inputs: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = inputs.get(key) or []
    if not isinstance(value, list | tuple):
        raise PromptError(f"{key} must be a list")
    if len(value) > MAX_FINDINGS:
        raise PromptError(f"more than {MAX_FINDINGS} {key}")
    return value


def build_prompt(kind: str, inputs: Mapping[str, Any]) -> str:
    """The model prompt for an AI output of ``kind`` from its structured ``inputs``.

    ``inputs`` follows the schema of the upstream imaging AI: ``specialty``, ``modality``,
    ``body_part``, ``study_description``, ``indication``, ``prior_report_accession`` (or null),
    ``findings`` (objects with ``concept``/``display`` and optional ``laterality``, ``location``,
    ``size_mm``, ``severity``, ``change``, ``certainty``, ``critical``) and ``negatives``. Same kind and
    inputs always give the same prompt, byte for byte. Raises :class:`PromptError` otherwise.
    """
    if kind not in TASK_PREFIXES:
        raise PromptError(f"unknown AI output kind {kind!r}")
    if not isinstance(inputs, Mapping):
        raise PromptError("inputs must be an object")
    findings = _list(inputs, "findings")
    negatives = _list(inputs, "negatives")
    lines = [TASK_PREFIXES[kind]]
    for key, label in (
        ("specialty", "specialty"),
        ("modality", "modality"),
        ("body_part", "body part"),
        ("study_description", "study"),
        ("indication", "indication"),
    ):
        value = _clean(inputs.get(key), key)
        if value:
            lines.append(f"{label}: {value}")
    lines.append("prior: " + ("available" if inputs.get("prior_report_accession") else "none"))
    lines += [_finding_line(f, i) for i, f in enumerate(findings)]
    lines += [_negative_line(n, i) for i, n in enumerate(negatives)]
    lines.append(ANSWER_MARK)
    return "\n".join(lines) + "\n"
