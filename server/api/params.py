"""Check the request-only sampling fields and fit the completion into the model's context."""

from __future__ import annotations

from dataclasses import dataclass

from data.names import parse_number
from server.errors import ContextLengthError, InvalidRequestError
from server.wire.openai import ResolvedSampling


@dataclass(frozen=True)
class Extras:
    """Fields that have no persona default: they come from the request or nowhere."""

    logit_bias: tuple[tuple[int, float], ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0


def parse_logit_bias(
    bias: dict[str, float] | None, vocab_size: int
) -> tuple[tuple[int, float], ...]:
    """Token-id keyed biases as pairs; every key must be a token id of this model."""
    if not bias:
        return ()
    pairs = []
    for key, value in bias.items():
        token = parse_number(key.strip())
        if token is None or not 0 <= token < vocab_size:
            raise InvalidRequestError(
                f"logit_bias key {key!r} is not a token id of this model (0..{vocab_size - 1})",
                param="logit_bias",
            )
        pairs.append((token, float(value)))
    return tuple(pairs)


def check_stop(stop: list[str]) -> tuple[str, ...]:
    """Stop strings must be non-empty; at most four, as OpenAI allows."""
    if len(stop) > 4:
        raise InvalidRequestError("stop may hold at most 4 sequences", param="stop")
    if any(not s for s in stop):
        raise InvalidRequestError("stop sequences must not be empty strings", param="stop")
    return tuple(stop)


def fit_context(prompt_tokens: int, max_tokens: int, *, explicit: bool, context_length: int) -> int:
    """The completion budget: an explicit max_tokens must fit; a default one is trimmed to fit."""
    if prompt_tokens >= context_length or (
        explicit and prompt_tokens + max_tokens > context_length
    ):
        requested = prompt_tokens + (max_tokens if explicit else 0)
        detail = (
            f"({prompt_tokens} in the prompt, {max_tokens} for the completion)"
            if explicit
            else f"({prompt_tokens} in the prompt)"
        )
        raise ContextLengthError(
            f"This model's maximum context length is {context_length} tokens. However, you "
            f"requested {requested} tokens {detail}. Please reduce the length of the prompt "
            "or of the completion.",
            param="messages",
        )
    return min(max_tokens, context_length - prompt_tokens)


def check_resolved(resolved: ResolvedSampling) -> None:
    """Refuse merged values that no layer should have produced (a card or config out of range)."""
    if resolved.max_tokens < 1:
        raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")
    if resolved.min_tokens > resolved.max_tokens:
        raise InvalidRequestError(
            f"min_tokens ({resolved.min_tokens}) exceeds max_tokens ({resolved.max_tokens})",
            param="min_tokens",
        )
