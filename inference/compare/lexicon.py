"""Load the readable lexicon files once and compile them into fast lookup tables.

The lexicon lives in ``lexicon/concepts.tsv`` (finding concepts) and ``lexicon/modifiers.json``
(negation, uncertainty, laterality, sites, severity, change words). Both are expanded here into one
phrase table keyed by token tuples, so extraction is a longest-match walk over tokens instead of a
large regex alternation: that keeps per-report cost linear and predictable.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

LEXICON_DIR = Path(__file__).with_name("lexicon")

#: Words are runs of letters optionally followed by digits (so "L4" and "T12" stay whole);
#: numbers keep their decimals. Everything else separates tokens.
TOKEN_RE = re.compile(r"[^\W\d_]+\d*|\d+(?:\.\d+)?")

#: Concepts that summarise a whole report ("no acute cardiopulmonary process") or describe normal
#: anatomy (breast density): extracted so callers can see them, but never a discrepancy on their own.
SUMMARY_CONCEPTS = frozenset({"no_finding", "breast_density"})

# Fuzzy matching only for long words: short words have too many one-edit neighbours to be safe.
FUZZY_MIN_LEN = 7


@dataclass(frozen=True)
class Concept:
    """One finding concept from concepts.tsv."""

    id: str
    name: str
    specialty: str
    critical: bool
    incidental: bool
    lateral: bool
    parent: str | None
    synonyms: tuple[str, ...]


def expand_pattern(pattern: str) -> list[tuple[str, ...]]:
    """Expand one lexicon phrase pattern into token tuples.

    Slots are separated by spaces; ``a/b`` offers alternatives; a trailing ``?`` makes a slot optional.
    ``"heart/cardiac size? is enlarged"`` gives four tuples.
    """
    slots: list[list[str]] = []
    for raw in pattern.lower().split():
        optional = raw.endswith("?")
        words = [w for w in raw.rstrip("?").split("/") if w]
        alternatives = [" ".join(TOKEN_RE.findall(w)) for w in words]
        if optional:
            alternatives.append("")
        slots.append(alternatives)
    phrases = []
    for combo in itertools.product(*slots):
        tokens = tuple(" ".join(part for part in combo if part).split())
        if tokens:
            phrases.append(tokens)
    return phrases


def _vertebral_levels(counts: dict[str, Any]) -> list[tuple[str, str]]:
    """Phrases and sites for spinal levels: "l4" -> "L4", "l4 l5" -> "L4-L5", "l5 s1" -> "L5-S1"."""
    levels = [
        f"{region}{n}"
        for region, count in counts.items()
        if not region.startswith("_")
        for n in range(1, int(count) + 1)
    ]
    phrases = [(level, level.upper()) for level in levels]
    phrases += [(f"{a} {b}", f"{a.upper()}-{b.upper()}") for a, b in zip(levels, levels[1:], strict=False)]
    return phrases


def _flag(value: str) -> bool:
    if value not in ("yes", "no"):
        raise ValueError(f"lexicon flag must be yes or no, got {value!r}")
    return value == "yes"


def load_concepts(path: Path = LEXICON_DIR / "concepts.tsv") -> dict[str, Concept]:
    """Read concepts.tsv (comment lines start with '#') into Concept objects keyed by id."""
    with path.open(encoding="utf-8") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        concepts: dict[str, Concept] = {}
        for row in rows:
            concept = Concept(
                id=row["id"],
                name=row["name"],
                specialty=row["specialty"],
                critical=_flag(row["critical"]),
                incidental=_flag(row["incidental"]),
                lateral=_flag(row["lateral"]),
                parent=row["parent"] or None,
                synonyms=tuple(s.strip() for s in row["synonyms"].split("|") if s.strip()),
            )
            if concept.id in concepts:
                raise ValueError(f"duplicate concept id {concept.id!r}")
            concepts[concept.id] = concept
    for concept in concepts.values():
        if concept.parent and concept.parent not in concepts:
            raise ValueError(f"{concept.id}: unknown parent {concept.parent!r}")
    return concepts


class Lexicon:
    """Compiled lookup tables: phrase table, vocabulary, fuzzy index, cue sets."""

    def __init__(self, concepts: dict[str, Concept], modifiers: dict[str, Any]) -> None:
        self.concepts = MappingProxyType(concepts)
        table: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
        concept_owner: dict[tuple[str, ...], str] = {}

        def add(pattern: str, kind: str, value: Any) -> None:
            for phrase in expand_pattern(pattern):
                entries = table.setdefault(phrase, [])
                if (kind, value) not in entries:
                    entries.append((kind, value))

        for concept in concepts.values():
            for synonym in concept.synonyms:
                for phrase in expand_pattern(synonym):
                    owner = concept_owner.setdefault(phrase, concept.id)
                    if owner != concept.id:
                        raise ValueError(f"synonym {' '.join(phrase)!r} used by {owner} and {concept.id}")
                add(synonym, "concept", concept.id)
        for concept_id, patterns in modifiers["normal_phrases"].items():
            if concept_id not in concepts:
                raise ValueError(f"normal phrase for unknown concept {concept_id!r}")
            for pattern in patterns:
                add(pattern, "normal", concept_id)
        for pattern in modifiers["negation_pre"]:
            add(pattern, "neg_pre", None)
        for pattern in modifiers["negation_post"]:
            add(pattern, "neg_post", None)
        for pattern, change in modifiers["pseudo_negation"].items():
            add(pattern, "pseudo", change)
        for pattern in modifiers["uncertainty_pre"]:
            add(pattern, "unc_pre", None)
        for pattern in modifiers["uncertainty_post"]:
            add(pattern, "unc_post", None)
        for pattern in modifiers["uncertainty_bi"]:
            add(pattern, "unc_bi", None)
        for pattern in modifiers["terminators"]:
            add(pattern, "term", None)
        for side, patterns in modifiers["laterality"].items():
            for pattern in patterns:
                add(pattern, "lat", side)
        for site, patterns in modifiers["sites"].items():
            for pattern in patterns:
                add(pattern, "site", site)
        for pattern, (side, site) in modifiers["site_with_laterality"].items():
            add(pattern, "lat", side)
            add(pattern, "site", site)
        for level, disc_level in _vertebral_levels(modifiers["vertebral_levels"]):
            add(level, "site", disc_level)
        for rank, patterns in modifiers["severity"].items():
            for pattern in patterns:
                add(pattern, "sev", float(rank))
        for change, patterns in modifiers["change"].items():
            for pattern in patterns:
                add(pattern, "change", change)
        self._check_phrase_kinds(table)

        self.table = {phrase: tuple(entries) for phrase, entries in table.items()}
        # Per first token, the phrase lengths to try, longest first.
        lengths: dict[str, set[int]] = {}
        for phrase in self.table:
            lengths.setdefault(phrase[0], set()).add(len(phrase))
        self.lengths = {first: tuple(sorted(ls, reverse=True)) for first, ls in lengths.items()}
        self.vocab = frozenset(word for phrase in self.table for word in phrase)
        self.fuzzy = self._build_fuzzy_index(self.vocab)
        self.prior_size_cues = frozenset(
            p for pattern in modifiers["prior_size_cues"] for p in expand_pattern(pattern)
        )
        self.broad_sites = frozenset(
            site for site in modifiers["broad_sites"] if not site.startswith("_comment")
        )
        self.post_cues = frozenset(
            p for pattern in modifiers["post_position_cues"] for p in expand_pattern(pattern)
        )
        self.modifiers = modifiers

    @staticmethod
    def _check_phrase_kinds(table: dict[tuple[str, ...], list[tuple[str, Any]]]) -> None:
        """Refuse phrases whose meanings contradict (e.g. both a pre- and a post-negation trigger)."""
        exclusive = {"neg_pre", "neg_post", "unc_pre", "unc_post", "unc_bi", "pseudo", "term"}
        for phrase, entries in table.items():
            kinds = {kind for kind, _ in entries}
            triggers = kinds & exclusive
            if len(triggers) > 1:
                raise ValueError(
                    f"phrase {' '.join(phrase)!r} has conflicting trigger kinds {sorted(triggers)}"
                )
            if "concept" in kinds and len(kinds) > 1:
                raise ValueError(f"phrase {' '.join(phrase)!r} is both a concept and a modifier")

    @staticmethod
    def _build_fuzzy_index(vocab: frozenset[str]) -> dict[str, str]:
        """Symmetric-delete index: every one-character deletion of a long vocabulary word.

        A misspelt token matches when it, or one of its deletions, meets a vocabulary word or one of its
        deletions; that covers one insertion, deletion, substitution or transposition. Keys shared by
        two vocabulary words are dropped because they cannot be resolved safely.
        """
        index: dict[str, str] = {}
        ambiguous: set[str] = set()
        for word in vocab:
            if len(word) < FUZZY_MIN_LEN or not word.isalpha():
                continue
            for key in {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}:
                if key in index and index[key] != word:
                    ambiguous.add(key)
                index.setdefault(key, word)
        for key in ambiguous:
            del index[key]
        return index

    def normalise(self, token: str) -> str:
        """Fold a lowercase token onto the vocabulary: plurals first, then one-edit typos."""
        if token in self.vocab:
            return token
        if token.endswith("ies") and token[:-3] + "y" in self.vocab:
            return token[:-3] + "y"
        if token.endswith("es") and token[:-2] in self.vocab:
            return token[:-2]
        if token.endswith("s") and token[:-1] in self.vocab:
            return token[:-1]
        if len(token) >= FUZZY_MIN_LEN and token.isalpha():
            hit = self.fuzzy.get(token)
            if hit is None:
                for i in range(len(token)):
                    hit = self.fuzzy.get(token[:i] + token[i + 1 :])
                    if hit is not None:
                        break
            if hit is not None and hit[0] == token[0]:
                return hit
        return token

    def is_ancestor(self, ancestor: str, concept: str) -> bool:
        """True when ``ancestor`` is ``concept`` itself or one of its parents."""
        seen = 0
        current: str | None = concept
        while current is not None and seen < 8:
            if current == ancestor:
                return True
            current = self.concepts[current].parent
            seen += 1
        return False


def load_lexicon(directory: Path = LEXICON_DIR) -> Lexicon:
    """Read both lexicon files from ``directory`` and compile them."""
    concepts = load_concepts(directory / "concepts.tsv")
    with (directory / "modifiers.json").open(encoding="utf-8") as handle:
        modifiers = json.load(handle)
    return Lexicon(concepts, modifiers)


#: The lexicon used by :func:`inference.compare.compare`, loaded once at import.
LEXICON = load_lexicon()
