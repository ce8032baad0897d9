"""The rows decoding together: their KV caches, the tokens they sampled last, and one step.

A sequence is prefilled alone, a chunk at a time, into a one-row batch cache (mlx-lm's
BatchKVCache, or BatchRotatingKVCache for sliding-window layers), then joins the running batch
with `extend`, which left-pads the shorter history and masks the padding; a finished row leaves
with `filter`. As in mlx-lm's `generate_step`, each step queues the next forward pass with
`mx.async_eval` before reading the tokens of the previous one, so Python overlaps the compute.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.models.cache import (
    BatchKVCache,
    BatchRotatingKVCache,
    KVCache,
    RotatingKVCache,
    make_prompt_cache,
)

from .engine_row import PendingLogprob, Row
from .engine_types import EngineError
from .lora_bank import LoraBank

PREFILL_STEP = 512
"""Prompt tokens per prefill forward pass."""

Consumed = list[tuple[Row, int, PendingLogprob | None]]
"""Each row with the token it produced last step and that token's logprob data."""


class DecodeBatch:
    """The batch of rows that share every decode forward pass."""

    def __init__(self, model: nn.Module, bank: LoraBank, vocab_size: int) -> None:
        self.model = model
        self.bank = bank
        self.vocab_size = vocab_size
        self.rows: list[Row] = []
        self._cache: list[Any] | None = None
        self._next: mx.array | None = None
        batch_cache(model)  # refuse unsupported cache types at start-up, not on first request

    def prefill(self, row: Row, budget: int = PREFILL_STEP) -> bool:
        """Run up to `budget` more prompt tokens of a row into its own cache.

        True once the whole prompt is in and the first token is sampled (it may then join).
        """
        prompt = row.handle.request.prompt
        body = len(prompt) - 1
        if row.cache is None:
            row.cache = batch_cache(self.model)
        self.bank.select([row.slot])
        if row.prefilled < body:
            end = min(row.prefilled + budget, body)
            self.model(
                mx.array(prompt[row.prefilled : end], dtype=mx.uint32)[None], cache=row.cache
            )
            mx.eval([c.state for c in row.cache])
            row.prefilled = end
            if end < body:
                return False
        last = mx.array(prompt[body:], dtype=mx.uint32)[None]
        logits = self.model(last, cache=row.cache)[:, -1, :]
        row.first = self._sample(row, logits, None)
        mx.async_eval(row.first, *(row.pending or ()))
        return True

    def join(self, row: Row) -> None:
        """Add a prefilled row; it decodes with everyone from the next step on."""
        assert row.cache is not None
        assert row.first is not None
        if self._cache is None or self._next is None:
            self._cache, self._next = row.cache, row.first
        else:
            for mine, theirs in zip(self._cache, row.cache, strict=True):
                mine.extend(theirs)
            self._next = mx.concatenate([self._next, row.first])
        row.cache, row.first = None, None
        self.rows.append(row)

    def step(self) -> Consumed:
        """Queue the next decode pass for every row, then return the tokens of the last one."""
        rows, inputs = self.rows, self._next
        assert inputs is not None
        current = [row.pending for row in rows]
        self.bank.select([row.slot for row in rows])
        logits = self.model(inputs[:, None], cache=self._cache)[:, -1, :]
        if all(row.sampler.plain for row in rows):
            upcoming = mx.argmax(logits, axis=-1)
            for row in rows:
                row.sampler.count += 1
        else:
            upcoming = mx.concatenate(
                [
                    self._pick(r, logits[i : i + 1])
                    if r.sampler.plain
                    # A row's processors see its own history, so they run row by row.
                    else self._sample(r, logits[i : i + 1], inputs[i : i + 1])
                    for i, r in enumerate(rows)
                ]
            )
        extras = [p for row in rows if row.pending for p in row.pending if p is not None]
        mx.async_eval(upcoming, *extras)
        tokens = inputs.tolist()
        self._next = upcoming
        return list(zip(rows, tokens, current, strict=True))

    def remove(self, indices: list[int]) -> list[Row]:
        """Drop rows (by position) before the next step; returns them."""
        drop = set(indices)
        gone = [row for i, row in enumerate(self.rows) if i in drop]
        keep = [i for i in range(len(self.rows)) if i not in drop]
        if not keep or self._cache is None or self._next is None:
            self.rows, self._cache, self._next = [], None, None
            mx.clear_cache()
            return gone
        for cache in self._cache:
            cache.filter(keep)
        self._next = self._next[mx.array(keep)]
        self.rows = [self.rows[i] for i in keep]
        return gone

    def _pick(self, row: Row, logits: mx.array) -> mx.array:
        row.sampler.count += 1
        return mx.argmax(logits, axis=-1)

    def _sample(self, row: Row, logits: mx.array, token: mx.array | None) -> mx.array:
        logits = row.sampler.process(logits, token)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        chosen = row.sampler.sample(logprobs)
        if row.wants_logprobs:
            picked = mx.take_along_axis(logprobs, chosen[:, None], axis=-1)
            k = min(row.top_logprobs, self.vocab_size)
            if k:
                ids = mx.argpartition(-logprobs, kth=k - 1, axis=-1)[:, :k]
                row.pending = (picked, ids, mx.take_along_axis(logprobs, ids, axis=-1))
            else:
                row.pending = (picked, None, None)
        return chosen


def batch_cache(model: nn.Module) -> list[Any]:
    """An empty one-row batch cache of the model's own cache layout."""
    caches: list[Any] = []
    for cache in make_prompt_cache(model):
        if type(cache) is KVCache:
            caches.append(BatchKVCache([0]))
        elif type(cache) is RotatingKVCache and cache.keep == 0:
            caches.append(BatchRotatingKVCache(cache.max_size, [0]))
        else:
            raise EngineError(f"{type(cache).__name__} caches cannot be batched yet")
    return caches


def float_dtype(model: nn.Module) -> mx.Dtype:
    """The dtype adapter weights are cast to: that of the model's first float parameter."""
    for _, value in tree_flatten(model.parameters()):
        if mx.issubdtype(value.dtype, mx.floating):
            return value.dtype
    return mx.float32
