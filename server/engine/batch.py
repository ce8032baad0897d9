"""The rows decoding together: their KV caches, the tokens they sampled last, and one step.

Sequences that arrive together are prefilled together, a chunk at a time, left-padded into one
batch cache (mlx-lm's BatchKVCache, or BatchRotatingKVCache for sliding-window layers, both
masking the padding); the group then joins the running batch with `extend`, which left-pads the
shorter history, and a finished row leaves with `filter`. As in mlx-lm's `generate_step`, each
step queues the next forward pass with `mx.async_eval` before reading the tokens of the previous
one, so Python overlaps the compute.
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

from server.engine.gemv_head import GemvHead
from server.engine.grammar import apply_mask
from server.engine.lookup import lookup_draft
from server.engine.lora_bank import LoraBank
from server.engine.prefix_cache import Reuse, to_batch
from server.engine.row import PendingLogprob, Row
from server.engine.token_mask import additive_mask
from server.engine.types import EngineError

PREFILL_STEP = 512
"""Prompt tokens per prefill forward pass (shared by the rows of a group)."""
MIN_CHUNK = 64
"""Fewest columns a prefill pass runs, however many rows share it."""

Consumed = list[tuple[Row, int, PendingLogprob | None]]
"""Each row with the token it produced last step and that token's logprob data."""


class DecodeBatch:
    """The batch of rows that share every decode forward pass."""

    def __init__(
        self,
        model: nn.Module,
        bank: LoraBank,
        vocab_size: int,
        banned: tuple[int, ...] = (),
        *,
        draft: int = 0,
        stop_ids: frozenset[int] = frozenset(),
        gemv_head: bool = False,
    ) -> None:
        self.model = model
        self.bank = bank
        self.vocab_size = vocab_size
        self._banned = additive_mask(banned, vocab_size, float_dtype(model)) if banned else None
        """-inf at the tokens no reply may contain (`token_mask.py`), 0 elsewhere."""
        self.draft = draft
        """Prompt-lookup draft tokens per pass for a lone plain greedy row (0: off)."""
        self.drafted = 0
        """Draft tokens fed so far."""
        self.accepted = 0
        """Draft tokens the model agreed with (each saved a decode step)."""
        self._stop_ids = stop_ids
        self.head = GemvHead.for_model(model, banned, self._banned) if gemv_head else None
        """The output layer through NumPy's GEMV for a lone greedy row, when asked and the model
        allows it (`gemv_head.py`)."""
        self.rows: list[Row] = []
        self._cache: list[Any] | None = None
        self._next: mx.array | None = None
        batch_cache(model)  # refuse unsupported cache types at start-up, not on first request

    def prefill(self, group: Prefill) -> bool:
        """Run the next chunk of a prefill group; True once every row has its first token."""
        rows = group.rows
        self.bank.select([row.slot for row in rows])
        if group.done < group.width:
            end = min(group.done + max(MIN_CHUNK, PREFILL_STEP // len(rows)), group.width)
            self.model(group.tokens[:, group.done : end], cache=group.cache)
            mx.eval([c.state for c in group.cache])
            group.done = end
            if end < group.width:
                return False
        last = mx.array([[row.handle.request.prompt[-1]] for row in rows], dtype=mx.uint32)
        logits = self.model(last, cache=group.cache)[:, -1, :]
        group.first = self._choose(rows, logits, None)
        mx.async_eval(group.first, *_pending_arrays(rows))
        return True

    def join(self, group: Prefill) -> list[Row]:
        """Add a prefilled group's live rows; they decode from the next step on."""
        assert group.first is not None
        keep = [i for i, row in enumerate(group.rows) if not row.cancelled]
        if not keep:
            return []
        cache, first = group.cache, group.first
        if len(keep) < len(group.rows):
            for layer in cache:
                layer.filter(keep)
            first = first[mx.array(keep)]
        if self._cache is None or self._next is None:
            self._cache, self._next = cache, first
        else:
            for mine, theirs in zip(self._cache, cache, strict=True):
                mine.extend(theirs)
            self._next = mx.concatenate([self._next, first])
        joined = [group.rows[i] for i in keep]
        self.rows += joined
        return joined

    def step(self) -> Consumed:
        """Queue the next decode pass for every row, then return the tokens of the last one.

        A lone plain greedy row may return several tokens of its own (see `_speculate`).
        """
        rows, inputs = self.rows, self._next
        assert inputs is not None
        if self.draft and len(rows) == 1 and self._may_speculate(rows[0]):
            spoken = self._speculate(rows[0], int(inputs.item()))
            if spoken is not None:
                return spoken
        if self.head is not None and len(rows) == 1 and _plain(rows[0]):
            return self._gemv_step(rows[0], inputs)
        current = [row.pending for row in rows]
        self.bank.select([row.slot for row in rows])
        logits = self.model(inputs[:, None], cache=self._cache)[:, -1, :]
        tokens: list[int] | None = None
        if any(row.grammar is not None for row in rows):
            # A grammar's next mask needs the token sampled last: read it while the forward pass
            # runs, and advance each grammar row's own matcher.
            mx.async_eval(logits)
            tokens = inputs.tolist()
            for row, token in zip(rows, tokens, strict=True):
                if row.grammar is not None:
                    row.grammar.advance(token)
        upcoming = self._choose(rows, logits, inputs)
        mx.async_eval(upcoming, *_pending_arrays(rows))
        if tokens is None:
            tokens = inputs.tolist()
        self._next = upcoming
        return list(zip(rows, tokens, current, strict=True))

    def _gemv_step(self, row: Row, inputs: mx.array) -> Consumed:
        """One step of a lone plain greedy row with the output layer in NumPy (synchronous)."""
        assert self.head is not None
        self.bank.select([row.slot])
        hidden = self.model.model(inputs[:, None], cache=self._cache)[:, -1, :]
        token = int(inputs.item())
        self._next = self.head.pick(hidden)
        row.sampler.count += 1
        return [(row, token, row.pending)]

    def _may_speculate(self, row: Row) -> bool:
        """Whether a multi-token pass and a trim keep this row's output and cache exact."""
        assert self._cache is not None
        # Stop strings can end a row mid-draft; grammars, processors and logprobs need per-token
        # work the verification pass does not do. A sliding-window cache can be trimmed only
        # before it wraps, so the whole pass must fit in the window.
        return (
            row.sampler.plain
            and row.grammar is None
            and not row.handle.request.params.stop
            and all(
                not isinstance(layer, BatchRotatingKVCache)
                or layer._offset + self.draft + 1 < layer.max_size
                for layer in self._cache
            )
        )

    def _speculate(self, row: Row, token: int) -> Consumed | None:
        """Feed `token` and a prompt-lookup draft in one pass; keep what greedy decoding agrees
        with. Returns `token` and the accepted draft, or None when there is nothing to draft."""
        assert self._cache is not None
        params = row.handle.request.params
        left = params.max_tokens - (len(row.fed) - len(row.handle.request.prompt)) - 1
        if token in self._stop_ids or left <= 0:
            return None
        draft = lookup_draft([*row.fed, token], min(self.draft, left))
        for i, candidate in enumerate(draft):
            if candidate in self._stop_ids:  # a row ends on a stop id: never run past one
                draft = draft[:i]
                break
        if not draft:
            return None
        self.bank.select([row.slot])
        fed = mx.array([[token, *draft]], dtype=mx.uint32)
        logits = self.model(fed, cache=self._cache)[0]
        if self._banned is not None:
            logits = logits + self._banned
        picks = mx.argmax(logits, axis=-1).tolist()
        agreed = 0
        while agreed < len(draft) and draft[agreed] == picks[agreed]:
            agreed += 1
        if agreed < len(draft):
            for layer in self._cache:
                layer.trim(len(draft) - agreed)
        self.drafted += len(draft)
        self.accepted += agreed
        row.sampler.count += agreed + 1
        self._next = mx.array([picks[agreed]], dtype=mx.uint32)
        return [(row, t, None) for t in (token, *draft[:agreed])]

    def extract(self, index: int) -> list[Any]:
        """The KV state of the row at `index` (every token fed so far), see `extract_row`."""
        assert self._cache is not None
        return extract_row(self._cache, index)

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

    def _choose(self, rows: list[Row], logits: mx.array, inputs: mx.array | None) -> mx.array:
        """The next token of every row from their (rows, vocab) logits.

        Each row's processors and grammar mask see only that row, so they run row by row; the
        normalisation and the greedy argmax then run once over all of those rows together (a
        reduction works row by row, so a row gets the same values alone or in any batch), and
        only seeded or random draws go back to a row's own sampler.
        """
        if self._banned is not None:
            # One broadcast add where the logits already are: every path below (argmax,
            # sampling, grammar rows, logprobs) then sees control tokens at -inf.
            logits = logits + self._banned
        plain = [row.sampler.plain and row.grammar is None for row in rows]
        if all(plain):
            for row in rows:
                row.sampler.count += 1
            return mx.argmax(logits, axis=-1)
        shaped: list[mx.array] = []
        for i, row in enumerate(rows):
            if not plain[i]:
                token = None if inputs is None else inputs[i : i + 1]
                row_logits = row.sampler.process(logits[i : i + 1], token)
                if row.grammar is not None:
                    row_logits = apply_mask(row_logits, row.grammar.mask())
                shaped.append(row_logits)
        stacked = shaped[0] if len(shaped) == 1 else mx.concatenate(shaped)
        logprobs = stacked - mx.logsumexp(stacked, axis=-1, keepdims=True)
        greedy = mx.argmax(logprobs, axis=-1)
        raw = mx.argmax(logits, axis=-1) if any(plain) else None
        chosen: list[mx.array] = []
        j = 0
        for i, row in enumerate(rows):
            if plain[i]:
                assert raw is not None
                row.sampler.count += 1
                chosen.append(raw[i : i + 1])
                continue
            row_logprobs = logprobs[j : j + 1]
            if row.sampler.greedy:
                row.sampler.count += 1
                token = greedy[j : j + 1]
            else:
                token = row.sampler.sample(row_logprobs)
            if row.wants_logprobs:
                row.pending = self._logprobs(row, row_logprobs, token)
            chosen.append(token)
            j += 1
        return chosen[0] if len(chosen) == 1 else mx.concatenate(chosen)

    def _logprobs(self, row: Row, logprobs: mx.array, chosen: mx.array) -> PendingLogprob:
        """The chosen token's logprob and the row's top alternatives, still lazy."""
        picked = mx.take_along_axis(logprobs, chosen[:, None], axis=-1)
        k = min(row.top_logprobs, self.vocab_size)
        if not k:
            return (picked, None, None)
        ids = mx.argpartition(-logprobs, kth=k - 1, axis=-1)[:, :k]
        return (picked, ids, mx.take_along_axis(logprobs, ids, axis=-1))


class Prefill:
    """Sequences whose prompts run together into one cache, left-padded to the longest.

    With `reuse` (a prefix cache hit) the group is one row whose cache starts from the stored
    prefix, and only the rest of its prompt runs.
    """

    def __init__(self, model: nn.Module, rows: list[Row], reuse: Reuse | None = None) -> None:
        self.rows = rows
        start = 0 if reuse is None else reuse.length
        if reuse is not None and len(rows) != 1:
            raise ValueError("a reused prefix starts a group of its own")
        bodies = [row.handle.request.prompt[start:-1] for row in rows]
        self.width = max(len(body) for body in bodies)
        """Prompt tokens per row still to run before the last one (which samples the first
        token)."""
        pads = [self.width - len(body) for body in bodies]
        self.tokens = mx.array(
            [[0] * pad + list(body) for pad, body in zip(pads, bodies, strict=True)],
            dtype=mx.uint32,
        )
        self.cache = batch_cache(model, pads) if reuse is None else to_batch(reuse.layers)
        self.done = 0
        """Columns of `tokens` already run."""
        self.first: mx.array | None = None
        """Each row's first sampled token, once the whole prompt is in."""

    @staticmethod
    def fits(lengths: list[int], length: int) -> bool:
        """Whether a prompt of `length` may join a group of `lengths` (at most half padding)."""
        widest = max([length, *lengths])
        return widest * (len(lengths) + 1) <= 2 * (sum(lengths) + length)


def batch_cache(model: nn.Module, left_padding: list[int] | None = None) -> list[Any]:
    """An empty batch cache of the model's own cache layout, one row per padding entry."""
    pads = left_padding or [0]
    caches: list[Any] = []
    for cache in make_prompt_cache(model):
        if type(cache) is KVCache:
            caches.append(BatchKVCache(pads))
        elif type(cache) is RotatingKVCache and cache.keep == 0:
            caches.append(BatchRotatingKVCache(cache.max_size, pads))
        else:
            raise EngineError(f"{type(cache).__name__} caches cannot be batched yet")
    return caches


def extract_row(cache: list[Any], index: int) -> list[Any]:
    """One row of a batch cache as evaluated single-sequence mlx-lm caches, one per layer."""
    layers = [layer.extract(index) for layer in cache]
    mx.eval([c.state[:2] for c in layers])
    return layers


def _plain(row: Row) -> bool:
    """Whether the row's token is the plain argmax of its raw logits."""
    return row.sampler.plain and row.grammar is None


def _pending_arrays(rows: list[Row]) -> list[mx.array]:
    return [p for row in rows if row.pending for p in row.pending if p is not None]


def float_dtype(model: nn.Module) -> mx.Dtype:
    """The dtype adapter weights are cast to: that of the model's first float parameter."""
    for _, value in tree_flatten(model.parameters()):
        if mx.issubdtype(value.dtype, mx.floating):
            return value.dtype
    return mx.float32
