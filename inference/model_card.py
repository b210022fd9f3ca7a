"""The model card as people read it: nested card values turned into labelled tables for the model pages.

A model card is free-form JSON (the build pipeline writes one shape, a hospital's own model another), so
the pages never print a raw dictionary: :func:`readable` turns any card value into a small tree of
blocks the template draws. A mapping becomes a table of labelled rows; a mapping whose values are all
mappings (metrics per kind, training pairs per kind, discrepancies per category) becomes a matrix with
one row per entry and one column per figure; a list of plain values becomes a list of chips. Shares are
shown as percentages, counts with thousands separators. Depth and size are bounded, so a hostile or
huge card cannot make the page unbounded; the template escapes every text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from portal.records.models import AIOutputKind, Specialty

#: Deeper values are shown as compact JSON text (wrapped), not as further nested tables.
MAX_DEPTH = 4
#: Rows and chips per block; the rest is counted in a note.
MAX_ROWS = 100
#: Characters of one text; a longer one ends in an ellipsis (the full card stays on the page as JSON).
MAX_TEXT = 2000
#: A matrix wider than this is drawn as one table per row instead.
MAX_COLUMNS = 10
#: Top-level metrics the models list shows first, in this order; then other numeric metrics.
HEADLINE_KEYS = ("facts_right_share", "reports_entirely_right_share", "exact_match_share", "chrf_mean")
HEADLINE_COUNT = 3

# Labels for the keys the build pipeline writes; any other key is humanised ("final_loss": "Final loss").
LABELS = {
    "chrf_mean": "chrF (mean)",
    "exact_match_share": "Exact match",
    "facts_right_share": "Facts right",
    "facts_matched": "Facts matched",
    "reports_entirely_right_share": "Reports entirely right",
    "significant_discrepancies": "Significant discrepancies",
    "per_category": "Discrepancies by category",
    "kinds": "By kind",
    "evaluation": "Method",
    "eval": "Evaluation",
    "n_embd": "Embedding width",
    "n_head": "Attention heads",
    "n_layer": "Layers",
    "n_positions": "Context window (tokens)",
    "eos_token_id": "End-of-text token id",
    "pad_token_id": "Padding token id",
    "max_new_tokens": "Longest answer (tokens)",
    "sha256": "SHA-256",
    "onnx": "ONNX",
    "onnxruntime": "ONNX Runtime",
}
LABELS.update({value: str(label) for value, label in AIOutputKind.choices})
LABELS.update({value: str(label) for value, label in Specialty.choices})


def label(key: object) -> str:
    """A card key as a heading: the known label, else the key with spaces and a capital first letter."""
    text = str(key)
    if text in LABELS:
        return LABELS[text]
    words = text.replace("_", " ").strip()
    words = words.replace(" sha256", " SHA-256").replace(" ids", " IDs")
    return words[:1].upper() + words[1:] if words else "—"


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_share(key: str) -> bool:
    # "_rate" is not a share: a learning rate of 0.002 is not 0.2 %.
    return key == "share" or key.endswith("_share")


def scalar_text(value: object, key: str = "") -> str:
    """One plain value as text: shares in percent, counts with separators, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if _is_share(key) and 0.0 <= value <= 1.0:
            return f"{value * 100:.1f} %"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{round(value, 4):g}" if abs(value) < 1e6 else f"{value:.4g}"
    return _clip(str(value))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"


def _chip_text(item: object, key: str) -> str:
    # Only known codes get their label: other strings (tokens, file names) are shown as written.
    return LABELS.get(item, item) if isinstance(item, str) else scalar_text(item, key)


def _compact(value: object) -> dict[str, Any]:
    """A value too deep to draw as tables: compact JSON text (the template wraps it)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return {"type": "text", "text": _clip(text), "code": True}


def _more(total: int) -> int:
    return max(0, total - MAX_ROWS)


def _cell(row: Mapping[str, Any], column: str) -> dict[str, Any]:
    """One matrix cell: its text, and whether it is a number (right-aligned, never wrapped)."""
    value = row.get(column)
    if column not in row or not _is_scalar(value):
        return {"text": "—", "num": True}  # aligned with the figures of its column
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {"text": scalar_text(value, column), "num": number}


def _matrix(data: Mapping[Any, Mapping[Any, Any]], depth: int) -> dict[str, Any] | None:
    """Rows of mappings as one table: a column per plain figure; nested values listed after it."""
    columns: list[str] = []
    for row in data.values():
        for key, value in row.items():
            if _is_scalar(value) and str(key) not in columns:
                columns.append(str(key))
    if not columns or len(columns) > MAX_COLUMNS:
        return None
    entries = list(data.items())
    rows, nested = [], []
    for key, row in entries[:MAX_ROWS]:
        plain = {str(k): v for k, v in row.items()}
        rows.append(
            {
                "key": str(key),
                "label": label(key),
                "cells": [_cell(plain, c) for c in columns],
            }
        )
        for sub_key, value in row.items():
            if not _is_scalar(value):
                nested.append(
                    {
                        "key": f"{key}.{sub_key}",
                        "label": f"{label(key)}: {label(sub_key).lower()}",
                        "value": readable(value, key=str(sub_key), depth=depth + 1),
                    }
                )
    return {
        "type": "matrix",
        "columns": [{"key": c, "label": label(c)} for c in columns],
        "rows": rows,
        "nested": nested,
        "more": _more(len(entries)),
    }


def readable(value: object, *, key: str = "", depth: int = 0) -> dict[str, Any]:
    """Any card value as a block for ``templates/inference/_card_block.html``.

    Block types: ``text`` (``text``, ``code``), ``chips`` (``items``, ``more``), ``kv`` (``rows`` of
    key, label and a nested block; ``more``) and ``matrix`` (``columns``, ``rows`` of label and cells,
    ``nested`` rows as in ``kv``; ``more``; a cell is ``text`` and ``num``). Empty mappings and lists
    read as "none".
    """
    if _is_scalar(value):
        return {"type": "text", "text": scalar_text(value, key), "code": False}
    if depth >= MAX_DEPTH:
        return _compact(value)
    if isinstance(value, list | tuple):
        if not value:
            return {"type": "text", "text": "none", "code": False}
        if all(_is_scalar(item) for item in value):
            items = [_chip_text(item, key) for item in value]
            return {"type": "chips", "items": items[:MAX_ROWS], "more": _more(len(items))}
        if all(isinstance(item, Mapping) for item in value):
            numbered = {str(index + 1): item for index, item in enumerate(value)}
            block = _matrix(numbered, depth)
            if block is not None:
                return block
        return readable({str(i + 1): item for i, item in enumerate(value)}, key=key, depth=depth)
    if isinstance(value, Mapping):
        if not value:
            return {"type": "text", "text": "none", "code": False}
        if all(isinstance(v, Mapping) and v for v in value.values()):
            block = _matrix(value, depth)
            if block is not None:
                return block
        entries = sorted(value.items(), key=lambda item: str(item[0]))
        return {
            "type": "kv",
            "rows": [
                {"key": str(k), "label": label(k), "value": readable(v, key=str(k), depth=depth + 1)}
                for k, v in entries[:MAX_ROWS]
            ],
            "more": _more(len(entries)),
        }
    return {"type": "text", "text": _clip(str(value)), "code": False}


def headline(metrics: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The few figures the models list shows: (label, text) of top-level numbers, known ones first."""
    if not isinstance(metrics, Mapping):
        return []
    numeric = {
        str(k): v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    order = [k for k in HEADLINE_KEYS if k in numeric] + sorted(k for k in numeric if k not in HEADLINE_KEYS)
    return [(label(k), scalar_text(numeric[k], k)) for k in order[:HEADLINE_COUNT]]


def labels_of(values: object) -> list[str]:
    """Kinds or specialties a version names, as their labels (unknown values as written)."""
    if not isinstance(values, list | tuple):
        return []
    return [LABELS.get(value, value) for value in values if isinstance(value, str)]
