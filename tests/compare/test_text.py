"""Section parsing, sentence splitting and measurement parsing."""

from inference.compare.text import clean, parse_size_mm, split_sections, split_sentences, tokenize


def _sections(text):
    return [(s.name, text[s.start : s.end].strip()) for s in split_sections(text)]


def _sentences(text):
    return [text[s.start : s.end] for section in split_sections(text) for s in split_sentences(text, section)]


def test_it_reads_a_headerless_report_as_body():
    assert _sections("No pneumothorax.") == [("body", "No pneumothorax.")]


def test_it_finds_headers_in_any_case_and_mid_line():
    text = "INDICATION: cough.\nFindings: Lungs clear. IMPRESSION: Normal."
    assert _sections(text) == [
        ("indication", "cough."),
        ("findings", "Lungs clear."),
        ("impression", "Normal."),
    ]


def test_it_accepts_a_header_alone_on_its_line():
    text = "FINDINGS\nSmall effusion.\nIMPRESSION\nEffusion."
    assert [name for name, _ in _sections(text)] == ["findings", "impression"]


def test_text_before_headers_is_a_preamble_when_findings_exist():
    text = "CHEST PA AND LATERAL\nFINDINGS: Clear."
    assert _sections(text)[0] == ("preamble", "CHEST PA AND LATERAL")


def test_numbered_impressions_become_separate_sentences_without_enumerators():
    text = "IMPRESSION:\n1. No pneumothorax. 2) Small left effusion.\n3. Stable nodule."
    assert _sentences(text) == ["No pneumothorax.", "Small left effusion.", "Stable nodule."]


def test_decimals_and_abbreviations_do_not_split_sentences():
    text = "Nodule measures 2.3 x 1.5 cm, e.g. large. Dr. Smith was called."
    assert _sentences(text) == ["Nodule measures 2.3 x 1.5 cm, e.g. large.", "Dr. Smith was called."]


def test_sentence_spans_point_into_the_original_text():
    text = "Findings:\r\n  No pneumothorax.\x00 Small effusion."
    cleaned = clean(text)
    assert len(cleaned) == len(text)
    for section in split_sections(cleaned):
        for sentence in split_sentences(cleaned, section):
            assert text[sentence.start : sentence.end].strip() == text[sentence.start : sentence.end]
            assert text[sentence.start].isalpha()


def test_sizes_take_the_largest_dimension_in_millimetres():
    assert parse_size_mm("2.3 x 1.5 cm") == 23.0
    assert parse_size_mm("2 cm x 15 mm") == 20.0
    assert parse_size_mm("8mm") == 8.0
    assert parse_size_mm("1.2 centimeters") == 12.0
    assert parse_size_mm("3 x 4 x 5 mm") == 5.0


def test_measurements_are_single_tokens():
    text = "A 2.3 x 1.5 cm mass."
    tokens = tokenize(text, 0, len(text))
    sizes = [t for t in tokens if t.kind == "size"]
    assert len(sizes) == 1
    assert text[sizes[0].start : sizes[0].end] == "2.3 x 1.5 cm"
