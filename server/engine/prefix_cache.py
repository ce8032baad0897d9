"""Prompt KV states kept between requests, so a conversation's next turn skips its history.

Each sequence leaves the key/value cache of what it fed the model as entries (its prompt once it
is prefilled, its prompt and reply once it finishes), keyed by the token ids behind them and by
their owner: the base model's hash and the adapter's manifest key (persona, run, step and weights
hash). A new request looks among its owner's entries for the longest common prefix of its
prompt and starts its prefill there. Entries are mlx-lm's own single-sequence caches (`KVCache`,
`RotatingKVCache`), taken from a batch row with `extract` and put back into a batch with `merge`.

Which prefix may be reused: every layer must describe the same `p` tokens. A full-attention
layer keeps every token, so it can be cut back to any `p` (`trim`). A sliding-window layer
(`RotatingKVCache`) keeps only the last `window` tokens once more have gone through it; it can be
cut back only while it never filled its window (mlx-lm's `can_trim_prompt_cache`), and once it
has, the entry is usable only whole (`p` equals the entry's length: the new prompt continues it
exactly), since the tokens a shorter prefix would need are gone. Anything else is recomputed.

A prefix shorter than `MIN_REUSE` tokens is recomputed. Entries live in one least-recently-used
order and leave it, oldest first, once their bytes pass the budget. An entry that a new entry of
the same owner continues is dropped when the new one can be cut back to it (it adds nothing);
when the new one cannot, only the longest such entry stays, for a regenerated or edited turn.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import (
    BatchKVCache,
    BatchRotatingKVCache,
    KVCache,
    RotatingKVCache,
    can_trim_prompt_cache,
)

MIN_REUSE = 8
"""Shorter shared prefixes are recomputed: every chat prompt shares its template's first tokens,
and a row that reuses a prefix prefills alone instead of with the rows that arrived with it."""

Owner = tuple[str, str]
"""(base model content hash, adapter manifest key or "" for the base model)."""


@dataclass(frozen=True)
class Entry:
    """The KV state of one token sequence, one mlx-lm cache per layer."""

    tokens: tuple[int, ...]
    layers: tuple[Any, ...]
    nbytes: int


@dataclass(frozen=True)
class Reuse:
    """A hit: the first `length` prompt tokens come from `layers` (fresh copies, batch of 1)."""

    length: int
    layers: tuple[Any, ...]


@dataclass(frozen=True)
class PrefixStats:
    """Counters of the cache since start-up."""

    budget: int
    nbytes: int
    entries: int
    hits: int
    misses: int
    evictions: int
    reused_tokens: int


class PrefixCache:
    """A byte-bounded LRU of prompt KV states, looked up by longest common token prefix."""

    def __init__(self, budget: int) -> None:
        self.budget = max(0, budget)
        """Bytes the entries may hold together; 0 turns the cache off."""
        self._entries: OrderedDict[tuple[Owner, tuple[int, ...]], Entry] = OrderedDict()
        self._nbytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.reused_tokens = 0

    @property
    def enabled(self) -> bool:
        """Whether lookups and inserts do anything."""
        return self.budget > 0

    def stats(self) -> PrefixStats:
        """A snapshot of the counters."""
        return PrefixStats(
            budget=self.budget,
            nbytes=self._nbytes,
            entries=len(self._entries),
            hits=self.hits,
            misses=self.misses,
            evictions=self.evictions,
            reused_tokens=self.reused_tokens,
        )

    def lookup(self, owner: Owner, prompt: tuple[int, ...]) -> Reuse | None:
        """The longest valid reusable prefix of `prompt[:-1]` (the last token is always run)."""
        if not self.enabled:
            return None
        limit = len(prompt) - 1
        best: tuple[int, tuple[Owner, tuple[int, ...]]] | None = None
        for key, entry in self._entries.items():
            if key[0] != owner:
                continue
            usable = _usable(entry, common_prefix(entry.tokens, prompt, limit))
            if usable >= MIN_REUSE and (best is None or usable > best[0]):
                best = (usable, key)
        if best is None:
            self.misses += 1
            return None
        length, key = best
        self._entries.move_to_end(key)
        self.hits += 1
        self.reused_tokens += length
        return Reuse(length, tuple(_cut(layer, length) for layer in self._entries[key].layers))

    def insert(self, owner: Owner, tokens: tuple[int, ...], layers: list[Any]) -> None:
        """Keep the KV state of `tokens` (evaluated single-sequence caches), then fit the budget."""
        if not self.enabled or not tokens:
            return
        layers = [_compact(layer) for layer in layers]
        nbytes = sum(layer.nbytes for layer in layers)
        if nbytes > self.budget:
            return
        prefixes = [
            key
            for key, entry in self._entries.items()
            if key[0] == owner
            and len(entry.tokens) <= len(tokens)
            and tokens[: len(entry.tokens)] == entry.tokens
        ]
        if not can_trim_prompt_cache(layers):
            # Keep the longest earlier prefix: a regenerated or edited turn starts from it.
            prefixes.sort(key=lambda key: len(key[1]))
            parent = prefixes.pop() if prefixes and len(prefixes[-1][1]) < len(tokens) else None
            prefixes = [key for key in prefixes if key != parent]
        for key in prefixes:
            self._drop(key)
        self._entries[(owner, tokens)] = Entry(tokens, tuple(layers), nbytes)
        self._nbytes += nbytes
        while self._nbytes > self.budget:
            self._drop(next(iter(self._entries)))
            self.evictions += 1

    def forget(self, owner: Owner) -> None:
        """Drop every entry of one owner (an adapter that was unloaded for good)."""
        for key in [k for k in self._entries if k[0] == owner]:
            self._drop(key)

    def _drop(self, key: tuple[Owner, tuple[int, ...]]) -> None:
        self._nbytes -= self._entries.pop(key).nbytes


def common_prefix(a: tuple[int, ...], b: tuple[int, ...], limit: int) -> int:
    """How many leading tokens `a` and `b` share, at most `limit`."""
    n = min(len(a), len(b), limit)
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] holds, a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _usable(entry: Entry, shared: int) -> int:
    """The prefix of `entry` that may be reused given `shared` matching tokens (0: none)."""
    if shared == len(entry.tokens):
        return shared
    return shared if can_trim_prompt_cache(list(entry.layers)) else 0


def _compact(layer: Any) -> Any:
    """A wrapped sliding-window layer cut to its last `max_size` tokens: all a continuation
    attends to (a chunked prefill leaves up to a chunk more)."""
    if type(layer) is not RotatingKVCache or layer.keys.shape[2] <= layer.max_size:
        return layer
    compact = RotatingKVCache(layer.max_size, layer.keep)
    compact.keys = mx.contiguous(layer.keys[..., -layer.max_size :, :])
    compact.values = mx.contiguous(layer.values[..., -layer.max_size :, :])
    compact.offset, compact._idx = layer.offset, layer.max_size
    mx.eval(compact.keys, compact.values)
    return compact


def _cut(layer: Any, length: int) -> Any:
    """A new single-sequence cache holding `layer`'s first `length` tokens (arrays shared)."""
    if type(layer) is KVCache:
        copy = KVCache()
        copy.keys, copy.values, copy.offset = layer.keys, layer.values, length
        return copy
    copy = RotatingKVCache(layer.max_size, layer.keep)
    copy.keys, copy.values = layer.keys, layer.values
    # Only whole entries or never-rotated ones get here, so the order is temporal.
    copy.offset = length
    copy._idx = layer._idx - (layer.offset - length)
    return copy


def to_batch(layers: tuple[Any, ...]) -> list[Any]:
    """A batch cache of one row from single-sequence caches (new arrays; the entry is kept)."""
    return [
        BatchKVCache.merge([c]) if type(c) is KVCache else BatchRotatingKVCache.merge([c])
        for c in layers
    ]
