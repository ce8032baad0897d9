"""One sequence in the batch: its sampler and adapter slot, and how its tokens become Deltas.

Token ids turn into text through mlx-lm's streaming detokenizer, then pass the stop-string
filter; stop ids end the sequence without adding text, and `max_tokens` ends it with `length`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from server.engine.grammar import RowGrammar
from server.engine.prefix_cache import Reuse
from server.engine.sampling import RowSampler
from server.engine.stops import StopText
from server.engine.tokens import TokenText
from server.engine.types import Delta, GenerationRequest, TokenLogprob

Sink = Callable[[Any], None]
"""Receives each Delta, or the exception that ends the sequence; safe to call from any thread."""

PendingLogprob = tuple[mx.array, mx.array | None, mx.array | None]
"""(chosen logprob (1, 1), top ids (1, k), top logprobs (1, k)), still being computed."""


@dataclass(eq=False)
class Handle:
    """A submitted sequence, as the MLX thread sees it."""

    id: int
    request: GenerationRequest
    sink: Sink


class Row:
    """The live state of one sequence while it holds a batch row."""

    def __init__(
        self,
        handle: Handle,
        sampler: RowSampler,
        detokenizer: Any,
        slot: int,
        adapter_key: str,
        grammar: RowGrammar | None = None,
    ) -> None:
        self.handle = handle
        self.sampler = sampler
        self.slot = slot
        """Bank slot of its adapter (0 = base model), fixed for the sequence's life."""
        self.adapter_key = adapter_key
        """The manifest key of its adapter, or "" for the base model."""
        params = handle.request.params
        self.top_logprobs = params.top_logprobs if params.logprobs else 0
        self.wants_logprobs = params.logprobs
        self.pending: PendingLogprob | None = None
        """Logprob data of the token sampled last and not yet consumed."""
        self.cancelled = False
        """Set when cancelled during prefill: the group drops it when it joins the batch."""
        self.grammar = grammar
        """The row's JSON grammar; it masks every token, and a stop string would cut the JSON."""
        self._detok = detokenizer
        self._stops = StopText(() if grammar is not None else params.stop)
        self._generated = 0
        self._unsent: list[int] = []
        self.fed: list[int] = list(handle.request.prompt)
        """Every token the model has been given for this row: the prompt, then each generated
        token once it is consumed (what the row's KV cache holds)."""
        self.looked_up = False
        """Whether the prefix cache was asked for this row (once per row)."""
        self.reuse: Reuse | None = None
        """The prefix cache hit its prefill starts from, if any."""
        adapter = handle.request.adapter
        self._version = None if adapter is None else adapter.manifest.version

    def consume(
        self, token: int, logprob: TokenLogprob | None, stop_ids: frozenset[int]
    ) -> Delta | None:
        """Advance by one generated token; the Delta to send (None if nothing to say yet)."""
        self._generated += 1
        self._unsent.append(token)
        self.fed.append(token)
        logprobs = (logprob,) if logprob is not None else ()
        if token in stop_ids:
            self._detok.finalize()
            text, hit = self._stops.feed(self._detok.last_segment)
            return self._delta(text if hit else text + self._stops.flush(), logprobs, "stop")
        self._detok.add_token(token)
        text, hit = self._stops.feed(self._detok.last_segment)
        if hit:
            return self._delta(text, logprobs, "stop")
        if self._generated >= self.handle.request.params.max_tokens:
            self._detok.finalize()
            more, hit = self._stops.feed(self._detok.last_segment)
            text += more if hit else more + self._stops.flush()
            return self._delta(text, logprobs, "stop" if hit else "length")
        if text or logprobs:
            return self._delta(text, logprobs, None)
        return None

    def _delta(self, text: str, logprobs: tuple[TokenLogprob, ...], finish: str | None) -> Delta:
        ids, self._unsent = tuple(self._unsent), []
        return Delta(
            text=text,
            token_count=self._generated,
            prompt_tokens=len(self.handle.request.prompt),
            logprobs=logprobs,
            finish_reason=finish,
            adapter_version=self._version,
            token_ids=ids,
        )


def read_logprob(token: int, pending: PendingLogprob, names: TokenText) -> TokenLogprob:
    """Turn a consumed token's computed logprob data into a TokenLogprob."""
    chosen, top_ids, top_values = pending
    text, raw = names(token)
    top: tuple[tuple[str, float, tuple[int, ...]], ...] = ()
    if top_ids is not None and top_values is not None:
        pairs = sorted(
            zip(top_ids.tolist()[0], top_values.tolist()[0], strict=True), key=lambda p: -p[1]
        )
        top = tuple((names(i)[0], float(v), names(i)[1]) for i, v in pairs)
    return TokenLogprob(token=text, logprob=float(chosen.item()), bytes=raw, top=top)
