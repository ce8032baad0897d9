"""Per-row sampling: each sequence has its own filters, logits processors and random key.

Sampling filters are mlx-lm's (`sample_utils`: top_p, min_p, top_k, applied in `make_sampler`'s
order) and repetition penalty and logit bias come from `make_logits_processors`. Presence and
frequency penalties follow OpenAI's definition (over the completion so far, not a window that
includes the prompt), and `min_tokens` masks every stop id until that many tokens exist. Each row
draws from its own key, split once per token, so a seeded reply does not depend on its neighbours.

Sorting Gemma's 262,144 log-probs for top_p took 34 ms per row per token on a 2-core CPU, more than
the 270M's whole decode step, and the Gumbel draw over the full vocabulary another 5 ms. So a row
whose filters keep a top-ranked set (top_p < 1, or top_k up to `CANDIDATES`) first takes its
`CANDIDATES` most likely tokens (one partition, about 3 ms), filters those and draws among them.
The nucleus is exact whenever those tokens hold top_p of the probability mass; when they hold
less (a nearly flat distribution), all of them are kept, as if top_k were `CANDIDATES` too.

Draws are Gumbel-max with noise that belongs to the token id, not to a position (see
`token_gumbel`): a partition's output order is not stable, and the 1e-6 logit differences that
batching causes reorder the same top set, so noise by position made a seeded reply depend on its
batch-mates. Now it is the same alone or in any batch.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

import mlx.core as mx
from mlx_lm.models.cache import TokenBuffer
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors

from server.engine.types import SamplingParams

Processor = Callable[[mx.array, mx.array], mx.array]
Filter = Callable[[mx.array], mx.array]

CANDIDATES = 1024
"""How many of the most likely tokens a top_p or top_k row draws among."""


def presence_penalty(penalty: float, prompt_len: int) -> Processor:
    """Subtract `penalty` once from every token already in the completion."""

    def apply(tokens: mx.array, logits: mx.array) -> mx.array:
        completion = tokens[prompt_len:]
        if completion.size:
            logits[:, completion] = logits[:, completion] - penalty
        return logits

    return apply


def frequency_penalty(penalty: float, prompt_len: int) -> Processor:
    """Subtract `penalty` from a token once per time it occurs in the completion."""

    def apply(tokens: mx.array, logits: mx.array) -> mx.array:
        completion = tokens[prompt_len:]
        if completion.size:
            logits = logits.at[:, completion].subtract(penalty)
        return logits

    return apply


def nucleus(logprobs: mx.array, top_p: float) -> mx.array:
    """top_p over normalised log-probs that may be a subset of the vocabulary (mass is of all)."""
    ascending = mx.sort(logprobs, axis=-1)
    mass_above = mx.cumsum(mx.exp(ascending), axis=-1, reverse=True, inclusive=False)
    dropped = (mass_above >= top_p).sum(axis=-1, keepdims=True)
    threshold = mx.take_along_axis(ascending, dropped, axis=-1)
    return mx.where(logprobs < threshold, -math.inf, logprobs)


def narrows(params: SamplingParams) -> bool:
    """True when the row's filters keep only top-ranked tokens, so candidates suffice."""
    return 0.0 < params.top_p < 1.0 or 0 < params.top_k <= CANDIDATES


def _filters(params: SamplingParams, width: int, vocab_size: int) -> list[Filter]:
    """The filters for log-probs `width` wide: the whole vocabulary or the candidates."""
    filters: list[Filter] = []
    if 0.0 < params.top_p < 1.0:
        if width < vocab_size:
            filters.append(lambda x: nucleus(x, params.top_p))
        else:
            filters.append(lambda x: apply_top_p(x, params.top_p))
    if params.min_p > 0.0:
        filters.append(lambda x: apply_min_p(x, params.min_p))
    if 0 < params.top_k < width:
        filters.append(lambda x: apply_top_k(x, params.top_k))
    return filters


def _processors(params: SamplingParams, prompt_len: int) -> list[Processor]:
    processors: list[Processor] = list(
        make_logits_processors(
            logit_bias=dict(params.logit_bias) or None,
            repetition_penalty=(
                params.repetition_penalty if params.repetition_penalty != 1.0 else None
            ),
            repetition_context_size=params.repetition_context_size,
        )
    )
    if params.presence_penalty:
        processors.append(presence_penalty(params.presence_penalty, prompt_len))
    if params.frequency_penalty:
        processors.append(frequency_penalty(params.frequency_penalty, prompt_len))
    return processors


class RowSampler:
    """Turns one row's logits into its next token."""

    def __init__(
        self,
        params: SamplingParams,
        prompt: tuple[int, ...],
        stop_ids: tuple[int, ...],
        vocab_size: int,
    ) -> None:
        self.count = 0
        """Tokens sampled so far (including ones still being computed)."""
        self._params = params
        self._greedy = params.temperature <= 0.0
        self._inv_temp = 0.0 if self._greedy else 1.0 / params.temperature
        self._candidates = (
            CANDIDATES if not self._greedy and narrows(params) and vocab_size > CANDIDATES else 0
        )
        width = self._candidates or vocab_size
        self._filters = [] if self._greedy else _filters(params, width, vocab_size)
        self._processors = _processors(params, len(prompt))
        self._context = TokenBuffer(list(prompt)) if self._processors else None
        self._stop_ids = mx.array(stop_ids) if params.min_tokens > 0 and stop_ids else None
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        self._key = None if self._greedy else mx.random.key(seed)
        self.plain = (
            self._greedy and not self._processors and self._stop_ids is None and not params.logprobs
        )
        """True when plain argmax over the raw logits gives this row's token."""

    @property
    def greedy(self) -> bool:
        """True when the row takes the most likely token (temperature 0): no draw, no key."""
        return self._greedy

    def process(self, logits: mx.array, token: mx.array | None) -> mx.array:
        """Apply this row's processors to its (1, vocab) logits; `token` is its latest token."""
        if self._context is not None:
            context = (
                self._context.update_and_fetch(token) if token is not None else self._context.tokens
            )
            for processor in self._processors:
                logits = processor(context, logits)
        if self._stop_ids is not None and self.count < self._params.min_tokens:
            logits[:, self._stop_ids] = -math.inf
        return logits

    def sample(self, logprobs: mx.array) -> mx.array:
        """The next token, shape (1,), from processed and normalised (1, vocab) log-probs."""
        self.count += 1
        if self._greedy or self._key is None:
            return mx.argmax(logprobs, axis=-1)
        self._key, draw = mx.random.split(self._key)
        if not self._candidates:
            for apply in self._filters:
                logprobs = apply(logprobs)
            # Gumbel-max with the noise at each token id's own position: mx.random.categorical
            # flipped 4 of 300 draws under 1e-6 logit changes, explicit noise none.
            noise = mx.random.gumbel(logprobs.shape, key=draw)
            return mx.argmax(logprobs * self._inv_temp + noise, axis=-1)
        ids = mx.argpartition(logprobs, kth=-self._candidates, axis=-1)[:, -self._candidates :]
        logprobs = mx.take_along_axis(logprobs, ids, axis=-1)
        for apply in self._filters:
            logprobs = apply(logprobs)
        noise = token_gumbel(ids.astype(mx.uint32), draw)
        pick = mx.argmax(logprobs * self._inv_temp + noise, axis=-1, keepdims=True)
        return mx.take_along_axis(ids, pick, axis=-1)[:, 0]


def _mix(x: mx.array) -> mx.array:
    """MurmurHash3's 32-bit finaliser: every input bit flips about half the output bits."""
    x = x ^ (x >> 16)
    x = x * 0x85EBCA6B
    x = x ^ (x >> 13)
    x = x * 0xC2B2AE35
    return x ^ (x >> 16)


def token_gumbel(ids: mx.array, key: mx.array) -> mx.array:
    """Gumbel noise for each token id (uint32, any shape), a function of (key, id) alone.

    Which tokens are candidates and in what order they come out of the partition change with
    the 1e-6 logit differences batching causes; noise tied to positions would then pick
    another token for the same key. Noise tied to the id does not depend on either. The uniform
    number is built from its distance to 1, so the large values that decide an argmax keep
    their full 24-bit resolution.
    """
    salt = mx.random.randint(0, 2**31, shape=(2,), key=key).astype(mx.uint32)
    bits = _mix(_mix(ids ^ salt[0]) + salt[1])
    gap = ((~bits >> 8).astype(mx.float32) + 0.5) * 2.0**-24
    return -mx.log(-mx.log1p(-gap))
