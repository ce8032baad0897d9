"""Constrained decoding: JSON grammars compiled with llguidance, applied as per-row token masks.

llguidance was chosen by measurement on Gemma's 262,144-token vocabulary (see docs/serving.md): a
schema compiles in milliseconds and a mask takes tens of microseconds, where outlines-core spent
20 s building one schema's index and xgrammar needs torch. Its tokenizer view takes seconds to
build, so it is built once, on the first structured request, and shared.

Every row with a grammar owns its own matcher. The scheduler advances it with the row's sampled
token and asks it for the next mask; a mask only ever touches its own row's logits. The compiled
grammar for a schema is cached, and each row starts from a copy of the cached pristine matcher.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import numpy as np

from server.engine.types import GenerationRequest, InvalidParams, JsonGrammar, SamplingParams

log = logging.getLogger(__name__)

CACHE_SIZE = 64
"""Compiled grammars kept, least recently used dropped first."""

COMPILE_OPTIONS = {"whitespace_flexible": False}
"""Compact JSON: no whitespace between tokens, so a model cannot pad a reply forever."""


@dataclass(frozen=True)
class Compiled:
    """A grammar ready to run: a pristine matcher to copy per row."""

    key: str
    matcher: Any


class Grammars:
    """Compiles JSON grammars for one tokenizer and caches them by schema; thread-safe."""

    def __init__(self, tokenizer: Any, stop_ids: tuple[int, ...], vocab_size: int) -> None:
        self._hf = tokenizer
        self._stop_ids = stop_ids
        self.vocab_size = vocab_size
        """Width of the model's logits (may exceed the tokenizer's vocabulary)."""
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Compiled] = OrderedDict()
        self.compiles = 0
        """Grammars compiled (cache misses) since start-up."""

    def compile(self, grammar: JsonGrammar) -> Compiled:
        """The compiled grammar for a schema (cached); InvalidParams names what cannot be enforced.

        The first call builds llguidance's view of the tokenizer (seconds); later cache misses
        take milliseconds and hits microseconds.
        """
        key = grammar.schema
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
            try:
                tokenizer = self._llg_tokenizer()
            except (ValueError, TypeError, RuntimeError) as exc:
                raise InvalidParams(
                    f"structured outputs are not available for this model's tokenizer: {exc}",
                    grammar.param,
                ) from None
        import llguidance

        try:
            text = llguidance.LLMatcher.grammar_from_json_schema(
                json.loads(grammar.schema), defaults=COMPILE_OPTIONS
            )
            matcher = llguidance.LLMatcher(tokenizer, text, log_level=0)
            problem = matcher.get_error() if matcher.is_error() else None
        except (ValueError, TypeError, RuntimeError) as exc:
            problem = str(exc)
        if problem is not None:
            raise InvalidParams(f"the JSON schema cannot be enforced: {problem}", grammar.param)
        compiled = Compiled(key, matcher)
        with self._lock:
            self.compiles += 1
            self._cache[key] = compiled
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def start(self, request: GenerationRequest) -> tuple[RowGrammar | None, SamplingParams]:
        """A new row's grammar (None without one) and the parameters its sampler runs with.

        A grammar row's mask applies `min_tokens` itself, only where the JSON allows more, so
        its sampler does not mask the stop ids.
        """
        if request.grammar is None:
            return None, request.params
        compiled = self.compile(request.grammar)
        grammar = RowGrammar(
            compiled.matcher.deep_copy(),
            self,
            self._tokenizer.vocab_size,
            request.params.min_tokens,
        )
        return grammar, dataclasses.replace(request.params, min_tokens=0)

    def stop_ids(self) -> tuple[int, ...]:
        """The ids that end a reply."""
        return self._stop_ids

    def _llg_tokenizer(self) -> Any:
        if self._tokenizer is None:
            import llguidance
            import llguidance.hf

            hf = getattr(self._hf, "_tokenizer", self._hf)
            self._tokenizer = llguidance.hf.from_tokenizer(
                hf,
                eos_token=list(self._stop_ids),
                slices=llguidance.LLTokenizer.json_slices(),
            )
        return self._tokenizer


class RowGrammar:
    """One row's grammar state: consumes the row's tokens and masks its next logits."""

    def __init__(
        self, matcher: Any, grammars: Grammars, grammar_vocab: int, min_tokens: int
    ) -> None:
        self._matcher = matcher
        self._grammars = grammars
        self._min_tokens = min_tokens
        self._count = 0
        # llguidance wants a buffer of exactly its own vocabulary; the model's logits may be wider.
        self._bits = np.zeros((1, (grammar_vocab + 31) // 32), dtype=np.int32)
        self._stop = np.array(grammars.stop_ids(), dtype=np.int64)

    def advance(self, token: int) -> None:
        """Feed the token this row sampled last."""
        self._count += 1
        if not self._matcher.is_stopped() and not self._matcher.consume_token(token):
            # Cannot happen while masks are applied; the row ends on its stop id either way.
            log.warning("grammar refused token %d: %s", token, self._matcher.get_error())

    def mask(self) -> mx.array:
        """A (1, vocab) bool array: True where the grammar allows the next token.

        End-of-turn is allowed exactly when the JSON is complete; `min_tokens` holds it back only
        while the grammar still allows something else, so it never forces the JSON to break.
        """
        allowed = self._allowed()
        stops = self._stop[self._stop < allowed.size]
        if self._count < self._min_tokens and allowed[stops].any():
            others = allowed.copy()
            others[stops] = False
            if others.any():
                allowed = others
        if not allowed.any():
            # A stopped or failed matcher (a row that is ending anyway) may only stop.
            allowed = np.zeros_like(allowed)
            allowed[stops] = True
        return mx.array(allowed[None, :])

    def _allowed(self) -> np.ndarray:
        bits = self._bits
        if self._matcher.is_stopped() or self._matcher.is_error():
            bits[:] = 0
        else:
            self._matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
        flags = np.unpackbits(bits.view(np.uint8), bitorder="little").astype(bool)
        width = self._grammars.vocab_size
        if flags.size < width:
            flags = np.concatenate([flags, np.zeros(width - flags.size, dtype=bool)])
        return flags[:width]


def apply_mask(logits: mx.array, mask: mx.array) -> mx.array:
    """Logits with every disallowed token at -inf."""
    return mx.where(mask, logits, mx.array(-mx.inf, dtype=logits.dtype))
