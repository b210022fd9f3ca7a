"""ROUGE-L and chrF."""

import random

import pytest

from inference.compare.metrics import chrf, lcs_length, rouge_l


def _lcs_table(a, b):
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            rows[i + 1][j + 1] = rows[i][j] + 1 if x == y else max(rows[i][j + 1], rows[i + 1][j])
    return rows[-1][-1]


def test_bit_parallel_lcs_matches_the_textbook_table():
    rng = random.Random(7)
    for _ in range(200):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        assert lcs_length(a, b) == _lcs_table(a, b)


def test_identical_texts_score_one_and_disjoint_texts_score_zero():
    assert rouge_l("No pneumothorax.", "no pneumothorax") == 1.0
    assert chrf("No pneumothorax.", "No pneumothorax.") == pytest.approx(1.0)
    assert rouge_l("alpha", "beta") == 0.0
    assert chrf("aaaa", "zzzz") == 0.0


def test_partial_overlap_is_between_zero_and_one():
    assert 0 < rouge_l("small left effusion", "small right effusion") < 1
    assert 0 < chrf("small left effusion", "small right effusion") < 1
