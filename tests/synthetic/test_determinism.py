"""The same (studies, seed) gives byte-identical output, in this process and in a fresh one."""

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from portal.demo.synthetic import Department, generate_department

REPO_ROOT = Path(__file__).resolve().parents[2]

DIGEST_SCRIPT = """
import hashlib, json
from dataclasses import asdict
from portal.demo.synthetic import generate_department
data = json.dumps(asdict(generate_department(studies=150, seed=42)), sort_keys=True)
print(hashlib.sha256(data.encode()).hexdigest())
"""


def _digest(department: Department) -> str:
    return hashlib.sha256(json.dumps(asdict(department), sort_keys=True).encode()).hexdigest()


def test_same_seed_gives_identical_department():
    assert asdict(generate_department(studies=120, seed=9)) == asdict(
        generate_department(studies=120, seed=9)
    )


def test_different_seeds_give_different_departments():
    first = generate_department(studies=50, seed=1)
    second = generate_department(studies=50, seed=2)
    assert [s.signed_text for s in first.studies] != [s.signed_text for s in second.studies]
    assert {s.study_instance_uid for s in first.studies}.isdisjoint(
        s.study_instance_uid for s in second.studies
    )


def test_output_does_not_depend_on_hash_randomisation():
    # A fresh interpreter with another PYTHONHASHSEED would expose any set/dict-order dependence.
    expected = _digest(generate_department(studies=150, seed=42))
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == expected


def test_it_rejects_seeds_and_sizes_outside_the_uid_budget():
    for kwargs in ({"studies": 10, "seed": -1}, {"studies": 10, "seed": 10**12}, {"studies": -1, "seed": 1}):
        with pytest.raises(ValueError):
            generate_department(**kwargs)


def test_an_empty_department_is_valid():
    empty = generate_department(studies=0, seed=1)
    assert empty.studies == () and empty.patients == ()
    assert 6 <= len(empty.radiologists) <= 8
