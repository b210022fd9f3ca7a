"""``manage.py compare_reports``: single pair, batch, and bad input that still lets the rest run."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command


def test_a_single_pair_prints_the_comparison_as_json(tmp_path, capsys):
    (tmp_path / "ai.txt").write_text("FINDINGS: Left pleural effusion.")
    (tmp_path / "signed.txt").write_text("FINDINGS: Right pleural effusion.")

    call_command("compare_reports", candidate=tmp_path / "ai.txt", reference=tmp_path / "signed.txt")

    result = json.loads(capsys.readouterr().out)
    assert result["discrepancies"][0]["category"] == "location"
    assert set(result) == {"discrepancies", "radpeer", "scores"}


def test_the_text_format_explains_each_discrepancy(tmp_path, capsys):
    (tmp_path / "ai.txt").write_text("No pneumothorax.")
    (tmp_path / "signed.txt").write_text("Large right pneumothorax.")

    call_command(
        "compare_reports", candidate=tmp_path / "ai.txt", reference=tmp_path / "signed.txt", format="text"
    )

    out = capsys.readouterr().out
    assert "Suggested RADPEER: 3b" in out
    assert "missed_finding" in out


def test_a_batch_reports_bad_lines_on_stderr_and_runs_the_rest(tmp_path, capsys):
    lines = [
        json.dumps({"id": "a", "candidate": "No effusion.", "reference": "No effusion.", "extra": 1}),
        "{not json",
        json.dumps({"id": "b", "candidate": 5, "reference": "x"}),
        json.dumps(["not", "an", "object"]),
        "",
        json.dumps({"id": "c", "candidate": "Possible nodule.", "reference": "Nodule."}),
    ]
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines))

    call_command("compare_reports", batch=tmp_path / "pairs.jsonl")

    captured = capsys.readouterr()
    outputs = [json.loads(line) for line in captured.out.splitlines()]
    assert [o["id"] for o in outputs] == ["a", "c"]
    assert outputs[0]["discrepancies"] == []
    assert outputs[1]["discrepancies"][0]["category"] == "certainty"
    assert "line 2:" in captured.err and "line 3:" in captured.err and "line 4:" in captured.err


def test_missing_arguments_and_files_are_clear_errors(tmp_path):
    with pytest.raises(CommandError, match="--candidate"):
        call_command("compare_reports")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("compare_reports", candidate=tmp_path / "nope", reference=tmp_path / "nope")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("compare_reports", batch=tmp_path / "nope.jsonl")
