"""Prompt-lookup drafts: guess the next tokens by finding where the last few appeared before.

A sequence that quotes or repeats its context (a name, a list, a code identifier, a loop) often
continues the way it did after the previous occurrence of its last tokens. The engine feeds such
a draft together with the real token in one forward pass, keeps the longest prefix the model
itself picks greedily, and trims the rest from the cache, so greedy output stays the model's own.
"""

from __future__ import annotations

from collections.abc import Sequence

NGRAM = 2
"""Tokens of the tail that must match an earlier occurrence."""


def lookup_draft(context: Sequence[int], size: int, ngram: int = NGRAM) -> list[int]:
    """Up to `size` tokens that followed the latest earlier occurrence of the last `ngram`
    tokens of `context`; empty when there is none."""
    if size <= 0 or len(context) <= ngram:
        return []
    tail = list(context[-ngram:])
    last = tail[-1]
    for end in range(len(context) - 2, ngram - 2, -1):
        # Compare the last token first: the whole n-gram is sliced only on a likely match.
        if context[end] == last and list(context[end - ngram + 1 : end + 1]) == tail:
            return list(context[end + 1 : end + 1 + size])
    return []
