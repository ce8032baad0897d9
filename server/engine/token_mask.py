"""The tokens a reply may never contain: control and unused tokens, masked from every draw.

Gemma's vocabulary holds about 6,200 `<unusedN>` tokens plus `<bos>`, `<pad>`, `<start_of_turn>`,
image markers and the like. A briefly trained adapter puts weight on them and samples
`<unused5943>` into a reply. Every added token of the tokenizer is masked except the stop ids
(a reply must be able to end) and added tokens made only of whitespace (runs of newlines and
tabs, which are ordinary text). The mask is one additive row, 0 or -inf, built once per
tokenizer and added to the logits of every row in one broadcast before any sampler, greedy or
grammar path sees them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

import mlx.core as mx

_IDS: WeakKeyDictionary[Any, tuple[int, ...]] = WeakKeyDictionary()


def banned_ids(tokenizer: Any, keep: Iterable[int]) -> tuple[int, ...]:
    """Ids of every added or special token except `keep` and whitespace-only ones, sorted."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    try:
        cached = _IDS.get(hf)
    except TypeError:
        cached = None
    kept = frozenset(int(i) for i in keep)
    if cached is None:
        found: set[int] = set()
        # `added_tokens_decoder` rebuilds a dict on each access (tens of ms): read it once.
        for token_id, token in getattr(hf, "added_tokens_decoder", {}).items():
            content = getattr(token, "content", str(token))
            if content.strip():
                found.add(int(token_id))
        found.update(int(i) for i in getattr(hf, "all_special_ids", ()))
        cached = tuple(sorted(found))
        with contextlib.suppress(TypeError):  # a tokenizer that cannot be weakly referenced
            _IDS[hf] = cached
    return tuple(i for i in cached if i not in kept)


def additive_mask(ids: Iterable[int], vocab_size: int, dtype: mx.Dtype) -> mx.array:
    """A (vocab_size,) row: -inf at `ids` (those inside the vocabulary), 0 elsewhere."""
    inside = [i for i in ids if 0 <= i < vocab_size]
    row = mx.zeros((vocab_size,), dtype=dtype)
    if inside:
        row[mx.array(inside)] = -math.inf
    # Evaluated here: a lazy array built on this thread cannot be evaluated on the MLX thread.
    mx.eval(row)
    return row
