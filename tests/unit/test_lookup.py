"""Prompt-lookup drafts: what follows the latest earlier occurrence of the context's tail."""

from __future__ import annotations

import pytest

from server.engine.lookup import lookup_draft


@pytest.mark.parametrize(
    ("context", "size", "draft"),
    [
        ([1, 2, 3, 4, 1, 2], 3, [3, 4, 1]),
        ([1, 2, 3, 1, 2], 5, [3, 1, 2]),  # shorter than asked: the context ends
        ([1, 2, 9, 8, 1, 2, 7, 1, 2], 2, [7, 1]),  # the latest occurrence wins
        ([7, 7, 7], 2, [7]),  # overlapping occurrences
        ([5, 1, 2], 2, []),  # no earlier occurrence
        ([2, 1, 3, 1], 2, []),  # only the last token recurs, not the 2-gram
        ([1, 2], 2, []),  # nothing before the tail
        ([1, 2, 3, 1, 2], 0, []),
    ],
)
def test_drafts(context: list[int], size: int, draft: list[int]) -> None:
    assert lookup_draft(context, size) == draft


def test_a_longer_ngram_needs_the_whole_tail_to_match() -> None:
    assert lookup_draft([4, 1, 2, 5, 3, 1, 2], 1, ngram=3) == []
    assert lookup_draft([3, 1, 2, 5, 3, 1, 2], 1, ngram=3) == [5]
