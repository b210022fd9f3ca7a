"""``python -m portal.demo.synthetic`` writes labelled pairs and DICOM files."""

import json

import pytest

from portal.demo.synthetic.__main__ import main


def test_it_writes_one_pair_per_study(tmp_path):
    out = tmp_path / "pairs.jsonl"
    assert (
        main(["--studies", "25", "--seed", "4", "--pairs", str(out), "--dicom-dir", str(tmp_path / "dcm")])
        == 0
    )
    pairs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(pairs) == 25
    assert all(set(p) == {"id", "candidate", "reference", "expected"} for p in pairs)
    assert len(list((tmp_path / "dcm").glob("*.dcm"))) == 25


def test_it_writes_identical_files_for_the_same_seed(tmp_path):
    main(["--studies", "40", "--seed", "8", "--pairs", str(tmp_path / "a.jsonl")])
    main(["--studies", "40", "--seed", "8", "--pairs", str(tmp_path / "b.jsonl")])
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_it_reports_bad_arguments_as_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--studies", "5", "--seed", "-3"])
    assert exit_info.value.code == 2
    assert "seed must be" in capsys.readouterr().err
