"""Hostile input: wrong types, empty and huge strings, control characters."""

import time

import pytest

from inference.compare import compare


@pytest.mark.parametrize("bad", [None, 1, b"No pneumothorax.", ["No pneumothorax."], 3.5])
def test_non_string_input_raises_type_error(bad):
    with pytest.raises(TypeError):
        compare(bad, "No pneumothorax.")
    with pytest.raises(TypeError):
        compare("No pneumothorax.", bad)


def test_empty_strings_compare_cleanly():
    result = compare("", "")
    assert result.discrepancies == () and result.radpeer == "1"
    assert result.scores["green_like"] == 1.0
    assert compare("", "Small left pneumothorax.").radpeer == "3b"


def test_control_characters_keep_spans_aligned():
    candidate = "\x00\x07Left\tpleural effusion.\x1b\r\nNo pneumothorax.\x7f"
    (discrepancy,) = compare(candidate, "Right pleural effusion.").discrepancies
    start, end = discrepancy.candidate_span
    assert candidate[start:end] == "Left\tpleural effusion."


def test_a_one_megabyte_report_is_handled_in_bounded_time():
    sentence = "Small left pleural effusion and no pneumothorax, stable compared with prior 2.3 x 1.5 cm. "
    huge = (sentence * (1_000_000 // len(sentence) + 1))[:1_000_000]
    started = time.perf_counter()
    result = compare(huge, "Small left pleural effusion.")
    assert time.perf_counter() - started < 30
    assert result.radpeer in {"1", "2a", "2b", "3a", "3b"}


def test_a_one_megabyte_sentence_without_punctuation_is_handled():
    huge = "pneumothorax " * 80_000 + "no " * 1000
    result = compare(huge, huge)
    assert result.discrepancies == ()


def test_unicode_and_odd_characters_do_not_break_offsets():
    candidate = "İİİ Ｆｉｎｄｉｎｇｓ: 左 Left pleural effusion — 2×3 cm. \u2028No PTX."
    result = compare(candidate, "Right pleural effusion.")
    for discrepancy in result.discrepancies:
        if discrepancy.candidate_span:
            start, end = discrepancy.candidate_span
            assert candidate[start:end] == discrepancy.candidate_text


def test_a_one_megabyte_sentence_full_of_modifiers_stays_linear():
    huge = "small left pneumothorax, new " * 35_000
    started = time.perf_counter()
    result = compare(huge, "Small left pneumothorax.")
    assert time.perf_counter() - started < 30
    assert result.radpeer in {"1", "2a", "2b", "3a", "3b"}
