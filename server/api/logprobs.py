"""Engine token log probabilities in both OpenAI shapes: chat's list and legacy parallel lists."""

from __future__ import annotations

import math
from collections.abc import Sequence

from server.api.wire import CompletionLogprobs, TokenLogprob, TopLogprob
from server.engine.types import TokenLogprob as EngineLogprob


def _finite(value: float) -> float:
    # JSON has no -inf; OpenAI reports impossible tokens as a very negative number.
    return value if math.isfinite(value) else -9999.0


def chat_logprobs(items: Sequence[EngineLogprob]) -> list[TokenLogprob]:
    """Chat completion `logprobs.content` entries."""
    return [
        TokenLogprob(
            token=item.token,
            logprob=_finite(item.logprob),
            bytes=list(item.bytes),
            top_logprobs=[
                TopLogprob(token, _finite(lp), list(token.encode("utf-8")))
                for token, lp in item.top
            ],
        )
        for item in items
    ]


def completion_logprobs(items: Sequence[EngineLogprob], offset: int) -> CompletionLogprobs:
    """Legacy `logprobs` for text completions; `offset` is where the generated text starts."""
    tokens, values, tops, offsets = [], [], [], []
    position = offset
    for item in items:
        tokens.append(item.token)
        values.append(_finite(item.logprob))
        tops.append({token: _finite(lp) for token, lp in item.top})
        offsets.append(position)
        position += len(item.token)
    return CompletionLogprobs(tokens, values, tops, offsets)
