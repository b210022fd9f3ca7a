"""`python -m inference.compare.evaluate` reads committee verdicts as labelled data, and refuses bad files.

The review app exports adjudications in the shape of hard_pairs.jsonl; anything else must be refused
with the file and line named, before any pair is evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.compare.evaluate import MAX_TEXT_CHARS, RecordError, evaluate, load_records, main

VERDICT = {
    "id": "review-17",
    "candidate": "Small left pleural effusion.",
    "reference": "Small right pleural effusion.",
    "expected": [{"category": "location", "finding": "pleural effusion"}],
    "note": "committee: recategorised from severity",
}


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "verdicts.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_committee_verdicts_in_the_hard_pair_shape_are_evaluated(tmp_path, capsys):
    normal = {**VERDICT, "id": "review-18", "kind": "normal_pair", "expected": []}
    path = _write(tmp_path, json.dumps(VERDICT), "", json.dumps(normal))
    report = evaluate(load_records(path))
    assert report.tp["location"] == 1 and report.normal_pairs == 1
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "location" in out and "normal-vs-normal pairs: 1" in out and "confusion" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "one JSON object"),
        (json.dumps({**VERDICT, "candidate": 42}), "'candidate' must be a string"),
        (json.dumps({**VERDICT, "reference": None}), "'reference' must be a string"),
        (json.dumps({**VERDICT, "expected": "location"}), "'expected' must be a list"),
        (json.dumps({**VERDICT, "expected": [{"category": "location"}]}), "non-empty 'finding'"),
        (json.dumps({**VERDICT, "expected": [{"category": "location", "finding": "  "}]}), "non-empty"),
        (
            json.dumps({**VERDICT, "expected": [{"category": "<script>alert(1)</script>", "finding": "x"}]}),
            "unknown category",
        ),  # fmt: skip
        (
            json.dumps({**VERDICT, "expected": [{"category": "'; DROP TABLE review;--", "finding": "x"}]}),
            "unknown category",
        ),  # fmt: skip
        (json.dumps({**VERDICT, "id": {"nested": True}}), "'id' must be"),
        (json.dumps({**VERDICT, "candidate": "x" * (MAX_TEXT_CHARS + 1)}), "longer than"),
    ],
)
def test_a_bad_line_is_refused_with_its_line_number(tmp_path, line, message):
    path = _write(tmp_path, json.dumps(VERDICT), line)
    with pytest.raises(RecordError) as refused:
        load_records(path)
    assert f"{path}:2:" in str(refused.value) and message in str(refused.value)


def test_the_command_line_exits_2_with_a_message_and_evaluates_nothing(tmp_path, capsys):
    path = _write(tmp_path, json.dumps(VERDICT), '{"candidate": 1}')
    with pytest.raises(SystemExit) as stopped:
        main([str(path)])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert f"{path}:2:" in captured.err and captured.out == ""


def test_a_file_that_is_not_utf8_or_missing_is_a_clear_error(tmp_path, capsys):
    binary = tmp_path / "verdicts.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    for path in (binary, tmp_path / "absent.jsonl"):
        with pytest.raises(SystemExit) as stopped:
            main([str(path)])
        assert stopped.value.code == 2
        assert "evaluate:" in capsys.readouterr().err


def test_hostile_text_in_a_verdict_is_only_text(tmp_path, capsys):
    hostile = {
        **VERDICT,
        "candidate": "<img src=x onerror=alert(1)> Small left pleural effusion. ' OR 1=1 --",
        "reference": "Small right pleural effusion. \u202e\u0000",
    }
    assert main([str(_write(tmp_path, json.dumps(hostile))), "--errors"]) == 0
    assert "location" in capsys.readouterr().out


def test_either_a_file_or_the_real_set_is_required(capsys):
    with pytest.raises(SystemExit) as stopped:
        main([])
    assert stopped.value.code == 2
