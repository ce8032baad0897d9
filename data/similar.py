"""Exact and near-duplicate text detection: normalised text, character shingles, Jaccard.

Two texts are near-duplicates when their character 4-gram sets overlap by `NEAR` (Jaccard), or
when they overlap by `LOOSE` and one is the other with at most `INSERTED` words added, which
catches "how far is the moon" vs "how far away is the moon" while keeping "what is a crab" and
"what is a star" apart. Pairs are compared in order of shingle-set size and skipped once sizes
alone rule a pair out, so ~1000 prompts take well under a second.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Sequence

import msgspec

NEAR = 0.7
"""Jaccard similarity at or above which two texts are near-duplicates."""
LOOSE = 0.5
"""Lower bar for texts that differ only by a few inserted words."""
INSERTED = 2
SHINGLE = 4

_NON_WORD = re.compile(r"[^\w]+")


class Pair(msgspec.Struct, frozen=True, order=True):
    """Indices of two similar texts and their similarity (1.0 only when identical)."""

    left: int
    right: int
    score: float

    @property
    def exact(self) -> bool:
        """Whether the normalised texts are identical."""
        return self.score >= 1.0


class Text(msgspec.Struct, frozen=True):
    """A text prepared for comparison."""

    norm: str
    grams: frozenset[str]


def normalise(text: str) -> str:
    """Lower-case, fold Unicode forms and punctuation away, and collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def prepare(text: str) -> Text:
    """Normalise a text and take its character shingles."""
    norm = normalise(text)
    padded = f" {norm} "
    if len(padded) <= SHINGLE:
        return Text(norm, frozenset((padded,)))
    grams = frozenset(padded[i : i + SHINGLE] for i in range(len(padded) - SHINGLE + 1))
    return Text(norm, grams)


def similarity(a: Text, b: Text) -> float | None:
    """1.0 for identical texts, the Jaccard score for near-duplicates, else None."""
    if a.norm == b.norm:
        return 1.0
    shared = len(a.grams & b.grams)
    score = shared / (len(a.grams) + len(b.grams) - shared)
    if score >= NEAR or (score >= LOOSE and _only_insertions(a.norm, b.norm)):
        # Different texts never score 1.0, so "exact" keeps meaning "identical once normalised".
        return round(min(score, 0.999), 3)
    return None


def similar_pairs(texts: Sequence[str]) -> list[Pair]:
    """Every pair (left < right) of texts in one list that are identical or near-identical."""
    prepared = [prepare(t) for t in texts]
    pairs = [
        Pair(i, j, score)
        for i, j in _candidates(prepared, prepared)
        if i < j and (score := similarity(prepared[i], prepared[j])) is not None
    ]
    return sorted(pairs)


def cross_pairs(left: Sequence[str], right: Sequence[str]) -> list[Pair]:
    """Every (left index, right index) pair of texts that are identical or near-identical."""
    a = [prepare(t) for t in left]
    b = [prepare(t) for t in right]
    pairs = [
        Pair(i, j, score)
        for i, j in _candidates(a, b)
        if (score := similarity(a[i], b[j])) is not None
    ]
    return sorted(pairs)


def _candidates(left: Sequence[Text], right: Sequence[Text]) -> set[tuple[int, int]]:
    """Pairs that could reach `LOOSE`: prefix filtering on the rarest shingles first.

    Two sets with Jaccard >= t share at least one of the first |A| - ceil(t|A|) + 1 items of each,
    whenever both are sorted in one global order; rare shingles first keeps the index lists short.
    """
    frequency: dict[str, int] = {}
    for text in (*left, *right):
        for gram in text.grams:
            frequency[gram] = frequency.get(gram, 0) + 1

    def prefix(text: Text) -> list[str]:
        grams = sorted(text.grams, key=lambda g: (frequency[g], g))
        return grams[: len(grams) - math.ceil(LOOSE * len(grams)) + 1]

    index: dict[str, list[int]] = {}
    for j, text in enumerate(right):
        for gram in prefix(text):
            index.setdefault(gram, []).append(j)
    found: set[tuple[int, int]] = set()
    for i, text in enumerate(left):
        for gram in prefix(text):
            found.update((i, j) for j in index.get(gram, ()))
    # Identical texts always share their whole prefix, so they are never missed.
    return found


def _only_insertions(a: str, b: str) -> bool:
    short, long = sorted((a.split(), b.split()), key=len)
    if len(short) < 3 or len(long) - len(short) > INSERTED:
        return False
    matcher = difflib.SequenceMatcher(a=short, b=long, autojunk=False)
    return all(tag in ("equal", "insert") for tag, *_ in matcher.get_opcodes())
