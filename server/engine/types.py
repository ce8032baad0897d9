"""What goes into the engine and what comes out: plain frozen dataclasses, no MLX.

`server/engine.py` re-exports all of these; modules that only need the types (wire conversion,
test fakes) can import this one without pulling in mlx.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapters.manifest import Manifest

MAX_TOP_LOGPROBS = 20
"""OpenAI's limit for `top_logprobs`."""


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples; defaults are OpenAI's (temperature 1, no penalties)."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    repetition_context_size: int = 20
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    min_tokens: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(frozen=True)
class AdapterRef:
    """Which adapter a request runs with."""

    manifest: Manifest
    path: Path
    """The checkpoint folder (adapters.safetensors + adapter_config.json)."""


@dataclass(frozen=True)
class JsonGrammar:
    """A JSON schema every reply must match; JSON mode is the schema `{"type": "object"}`."""

    schema: str
    """The schema as canonical JSON text (sorted keys); grammars are cached by it."""
    param: str = "response_format"
    """The request field the schema came from, named in errors."""


@dataclass(frozen=True)
class GenerationRequest:
    """One sequence to generate."""

    prompt: tuple[int, ...]
    """Token ids, BOS already included (the chat template adds it)."""
    params: SamplingParams
    adapter: AdapterRef | None = None
    """None runs the base model."""
    grammar: JsonGrammar | None = None
    """Constrains every token to the schema; stop strings do not apply, the grammar ends it."""


@dataclass(frozen=True)
class ScoreRequest:
    """Tokens to teacher-force: the log probability of each of `prompt[start:]` given those
    before it, with `adapter` applied (None runs the base model)."""

    prompt: tuple[int, ...]
    """Token ids, BOS included."""
    start: int
    """The first token scored; at least 1 (the first token has nothing before it)."""
    adapter: AdapterRef | None = None
    top_logprobs: int = 0
    """How many of the likeliest alternatives to report at each scored position."""


@dataclass(frozen=True)
class TokenLogprob:
    """The log probability of one generated token, with the most likely alternatives."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[tuple[str, float, tuple[int, ...]], ...]
    """The most likely tokens, most likely first: (text, logprob, bytes)."""


@dataclass(frozen=True)
class Delta:
    """One streamed piece of a reply."""

    text: str
    """New visible text; stop strings are withheld and never returned."""
    token_count: int
    """Completion tokens so far."""
    prompt_tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: str | None = None
    """`stop` or `length` on the last Delta, else None."""
    adapter_version: str | None = None
    """`run-3:200` for an adapter, None for the base model."""
    token_ids: tuple[int, ...] = ()
    """The ids generated since the previous Delta (a final stop id included)."""


@dataclass(frozen=True)
class EngineStats:
    """Counters since start-up and the current load, for /metrics."""

    requests: int
    """Sequences accepted."""
    finished: int
    cancelled: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    active: int
    """Rows in the decode batch now."""
    queued: int
    """Sequences waiting for a row."""
    steps: int
    """Batched decode steps run."""
    prefills: int
    """Sequences prefilled."""
    prefill_groups: int
    """Prefill groups run: sequences arriving together share their prompt passes."""
    adapters_loaded: int
    adapter_loads: int
    adapter_failures: int
    adapter_evictions: int
    max_batch: int
    max_adapters: int
    batch_sizes: tuple[tuple[int, int], ...] = ()
    """(rows in the batch, decode steps run at that size), smallest first."""
    prefix_cache_budget_bytes: int = 0
    """The prefix cache's byte budget (0: off)."""
    prefix_cache_bytes: int = 0
    """Bytes of KV state the prefix cache holds now."""
    prefix_cache_entries: int = 0
    prefix_cache_hits: int = 0
    """Prompts that started from a stored prefix."""
    prefix_cache_misses: int = 0
    prefix_cache_evictions: int = 0
    """Entries dropped to stay within the budget."""
    prefix_cache_reused_tokens: int = 0
    """Prompt tokens taken from the cache instead of computed."""
    lookup_draft_tokens: int = 0
    """Prompt-lookup draft tokens fed to the model (0 unless `lookup_draft` is on)."""
    lookup_accepted_tokens: int = 0
    """Draft tokens greedy decoding agreed with: decode steps saved."""
    gemv_head_steps: int = 0
    """Lone greedy steps whose token NumPy's GEMV picked with a proof (`gemv_head` on)."""
    gemv_head_fallbacks: int = 0
    """Lone greedy steps that fell back to MLX's product at a near tie."""


class EngineError(Exception):
    """Base of every error the engine raises to a caller."""


class AdapterError(EngineError):
    """An adapter was refused; whatever was serving keeps serving."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        """Why, in one line a person can act on."""


class AdapterBusy(AdapterError):  # noqa: N818
    """Every adapter slot serves a running request; loading again later may succeed."""


class ContextLengthError(EngineError):
    """The prompt plus max_tokens does not fit the model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, limit: int) -> None:
        super().__init__(
            f"this model's maximum context length is {limit} tokens; the prompt has "
            f"{prompt_tokens} tokens and {max_tokens} more were requested for the completion"
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.limit = limit


class InvalidParams(EngineError, ValueError):  # noqa: N818
    """A sampling parameter the engine cannot run (checked before the request is queued)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param
        """The offending field, in OpenAI's naming."""


class EngineClosed(EngineError):  # noqa: N818
    """The engine shut down before the sequence finished."""


class GenerationFailed(EngineError):  # noqa: N818
    """The MLX thread hit an unexpected error while running this sequence."""
