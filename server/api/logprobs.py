"""Engine token log probabilities in both OpenAI shapes: chat's list and legacy parallel lists."""

from __future__ import annotations

import codecs
import math
from collections.abc import Sequence

from server.engine.types import TokenLogprob as EngineLogprob
from server.wire.openai import CompletionLogprobs, TokenLogprob, TopLogprob


def _finite(value: float) -> float:
    # JSON has no -inf; OpenAI reports impossible tokens as a very negative number.
    return value if math.isfinite(value) else -9999.0


def chat_logprobs(items: Sequence[EngineLogprob]) -> list[TokenLogprob]:
    """Chat completion `logprobs.content` entries; each alternative carries its own bytes."""
    return [
        TokenLogprob(
            token=item.token,
            logprob=_finite(item.logprob),
            bytes=list(item.bytes),
            top_logprobs=[TopLogprob(token, _finite(lp), list(raw)) for token, lp, raw in item.top],
        )
        for item in items
    ]


class TextOffsets:
    """Where each generated token starts, in characters of the returned text.

    Byte tokens may each hold part of one character, so positions are counted over the decoded
    bytes: a token starts at the number of whole characters before it.
    """

    def __init__(self, before: str) -> None:
        self._chars = len(before)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def next(self, raw: Sequence[int]) -> int:
        """The offset of the token with bytes `raw`; then move past it."""
        offset = self._chars
        self._chars += len(self._decoder.decode(bytes(raw)))
        return offset


def completion_logprobs(items: Sequence[EngineLogprob], offsets: TextOffsets) -> CompletionLogprobs:
    """Legacy `logprobs` for text completions; `offsets` continues over a streamed choice."""
    tokens, values, tops, starts = [], [], [], []
    for item in items:
        tokens.append(item.token)
        values.append(_finite(item.logprob))
        top: dict[str, float] = {}
        for token, lp, _ in item.top:
            top.setdefault(token, _finite(lp))  # the likelier of two same-reading tokens
        tops.append(top)
        starts.append(offsets.next(item.bytes))
    return CompletionLogprobs(tokens, values, tops, starts)
