"""Near-duplicate detection: rewordings match, different questions do not, index misses none."""

from __future__ import annotations

import random

import pytest

from data.similar import Pair, cross_pairs, prepare, similar_pairs, similarity


@pytest.mark.parametrize(
    ("a", "b", "near"),
    [
        ("Why is the sea salty?", "why is the sea SALTY", True),
        ("How far is the moon?", "How far away is the moon?", True),
        ("Where do you keep the maps?", "Where do you keep the old maps?", True),
        ("Tell me a story about a whale", "Tell me a story about a whale, please", True),
        ("What is a crab?", "What is a star?", False),
        ("Can you tell me about crabs?", "Can you tell me about stars?", False),
        ("Hi", "Hello", False),
    ],
)
def test_similarity(a: str, b: str, near: bool) -> None:
    assert (similarity(prepare(a), prepare(b)) is not None) is near


def test_exact_means_identical_once_normalised() -> None:
    assert similar_pairs(["Hi there!", "hi   there", "hi there you"]) == [Pair(0, 1, 1.0)]


def test_indexed_search_finds_what_brute_force_finds() -> None:
    rng = random.Random(0)
    words = ["tide", "star", "map", "clock", "ship", "ledger", "shelf", "vault", "rope", "bee"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(300)]
    texts += [t + " please" for t in texts[:40]]
    prepared = [prepare(t) for t in texts]
    brute = sorted(
        Pair(i, j, score)
        for i in range(len(texts))
        for j in range(i + 1, len(texts))
        if (score := similarity(prepared[i], prepared[j])) is not None
    )
    assert similar_pairs(texts) == brute
    assert len(brute) > 40
    left, right = texts[:150], texts[150:]
    expected = sorted(
        Pair(i, j, score)
        for i in range(len(left))
        for j in range(len(right))
        if (score := similarity(prepare(left[i]), prepare(right[j]))) is not None
    )
    assert cross_pairs(left, right) == expected
