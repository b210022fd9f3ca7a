"""The model card as readable tables: every card value becomes text, chips, a table or a matrix."""

from __future__ import annotations

import json

from inference import model_card
from inference.registry import builtin_artifacts_root


def _texts(block: dict) -> list[str]:
    """Every text a block would print (labels and values), depth first."""
    kind = block["type"]
    if kind == "text":
        return [block["text"]]
    if kind == "chips":
        return list(block["items"])
    out: list[str] = []
    if kind == "kv":
        for row in block["rows"]:
            out += [row["label"], *_texts(row["value"])]
        return out
    out += [column["label"] for column in block["columns"]]
    for row in block["rows"]:
        out += [row["label"], *(cell["text"] for cell in row["cells"])]
    for row in block["nested"]:
        out += [row["label"], *_texts(row["value"])]
    return out


def _shipped_cards() -> list[dict]:
    directories = [d for d in builtin_artifacts_root().iterdir() if (d / "card.json").is_file()]
    assert directories, "no shipped model"
    return [json.loads((d / "card.json").read_text(encoding="utf-8")) for d in sorted(directories)]


def test_metrics_per_kind_become_a_matrix_with_labels_and_percentages():
    metrics = {
        "facts_right_share": 0.6783,
        "kinds": {
            "report_draft": {"pairs": 300, "exact_match_share": 0.1033, "chrf_mean": 0.807},
            "history_summary": {"pairs": 144, "exact_match_share": 0.9722},
        },
    }

    block = model_card.readable(metrics)

    assert block["type"] == "kv"
    rows = {row["key"]: row for row in block["rows"]}
    assert rows["facts_right_share"]["label"] == "Facts right"
    assert rows["facts_right_share"]["value"]["text"] == "67.8 %"
    matrix = rows["kinds"]["value"]
    assert matrix["type"] == "matrix"
    assert [c["label"] for c in matrix["columns"]] == ["Pairs", "Exact match", "chrF (mean)"]
    by_kind = {row["label"]: [cell["text"] for cell in row["cells"]] for row in matrix["rows"]}
    assert by_kind == {"Report draft": ["300", "10.3 %", "0.807"], "History summary": ["144", "97.2 %", "—"]}


def test_nested_figures_of_a_row_are_drawn_as_their_own_table():
    per_kind = {"report_draft": {"pairs": 3, "per_category": {"missed_finding": {"significant": 2}}}}

    matrix = model_card.readable(per_kind)

    (nested,) = matrix["nested"]
    assert nested["label"] == "Report draft: discrepancies by category"
    assert nested["value"]["type"] == "matrix"
    assert nested["value"]["rows"][0]["label"] == "Missed finding"
    assert nested["value"]["rows"][0]["cells"] == [{"text": "2", "num": True}]


def test_the_shipped_cards_print_no_raw_dictionary_or_list():
    for card in _shipped_cards():
        for section in (card["metrics"], card["lineage"], card["generation_defaults"], card["settings"]):
            texts = _texts(model_card.readable(section))
            assert texts
            assert not [t for t in texts if t.lstrip().startswith(("{", "["))], (card["version"], texts)


def test_values_read_as_people_write_them():
    assert model_card.scalar_text(None) == "—"
    assert model_card.scalar_text(True) == "yes" and model_card.scalar_text(False) == "no"
    assert model_card.scalar_text(3161088) == "3,161,088"
    assert model_card.scalar_text(1548.0) == "1,548"
    assert model_card.scalar_text(0.002, "learning_rate") == "0.002"  # a rate is not a share
    assert model_card.scalar_text(0.5, "reports_entirely_right_share") == "50.0 %"
    assert model_card.scalar_text(1.7, "odd_share") == "1.7"  # not a share after all: shown as is
    assert model_card.label("train_pairs_sha256") == "Train pairs SHA-256"
    assert model_card.label("patient_letter") == "Patient letter"
    assert model_card.labels_of(["chest", "report_draft", "custom"]) == ["Chest", "Report draft", "custom"]
    assert model_card.labels_of("not a list") == []


def test_empty_and_unknown_shapes_still_read():
    assert model_card.readable({}) == {"type": "text", "text": "none", "code": False}
    assert model_card.readable([]) == {"type": "text", "text": "none", "code": False}
    chips = model_card.readable(["<pad>", "chest", 3])
    assert chips == {"type": "chips", "items": ["<pad>", "Chest", "3"], "more": 0}
    mixed = model_card.readable([{"a": 1}, "b"])
    assert mixed["type"] == "kv" and [r["label"] for r in mixed["rows"]] == ["1", "2"]


def test_a_deep_wide_or_huge_card_is_bounded():
    deep: dict = {"x": 1}
    for _ in range(10):
        deep = {"level": deep}
    texts = _texts(model_card.readable(deep))
    assert any(t.startswith("{") for t in texts)  # beyond MAX_DEPTH: compact JSON, not more tables

    wide = {"row": {f"figure_{i}": i for i in range(model_card.MAX_COLUMNS + 5)}}
    assert model_card.readable(wide)["type"] == "kv"  # too wide for a matrix: a table per row

    huge = model_card.readable({f"k{i:05d}": i for i in range(5000)})
    assert len(huge["rows"]) == model_card.MAX_ROWS and huge["more"] == 5000 - model_card.MAX_ROWS
    for long in ({"a": {"b": {"c": {"d": {"e": "x" * 10_000}}}}}, {"note": "y" * 10_000}):
        assert max(len(t) for t in _texts(model_card.readable(long))) <= model_card.MAX_TEXT + 2


def test_headline_picks_known_figures_first_and_skips_text_and_nesting():
    metrics = {
        "evaluation": "greedy decoding",
        "kinds": {"report_draft": {"pairs": 3}},
        "zeta": 2,
        "reports_entirely_right_share": 0.7333,
        "facts_right_share": 0.6783,
        "flag": True,
    }

    assert model_card.headline(metrics) == [
        ("Facts right", "67.8 %"),
        ("Reports entirely right", "73.3 %"),
        ("Zeta", "2"),
    ]
    assert model_card.headline(None) == [] and model_card.headline({"a": "b"}) == []
