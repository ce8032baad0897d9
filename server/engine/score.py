"""Teacher forcing: the log probability the served model gives each token of a known text.

The engine's thread runs it between decode steps, with the request's adapter selected in the
same LoRA bank that generation uses, so a score measures exactly what is served. The numbers are
the model's own distribution (a log-softmax over the full vocabulary): no temperature, penalty,
mask or bias applies, as in vLLM's prompt logprobs. The text before `start` runs through a cache
without computing its logits; the scored part then runs in chunks, so at most `CHUNK` rows of
vocabulary-wide logits exist at once.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import make_prompt_cache

from server.engine.lora_bank import LoraBank
from server.engine.tokens import TokenText
from server.engine.types import ScoreRequest, TokenLogprob

CHUNK = 256
"""Scored positions per forward pass."""


def teacher_force(
    model: nn.Module, bank: LoraBank, slot: int, request: ScoreRequest, names: TokenText
) -> tuple[TokenLogprob, ...]:
    """Logprob (and top alternatives) of each token of `request.prompt[request.start:]`."""
    ids = request.prompt
    cache = make_prompt_cache(model)
    bank.select([slot])
    if request.start > 1:
        model(mx.array([ids[: request.start - 1]], dtype=mx.uint32), cache=cache)
        mx.eval([c.state for c in cache])
    found: list[TokenLogprob] = []
    for begin in range(request.start, len(ids), CHUNK):
        end = min(begin + CHUNK, len(ids))
        logits = model(mx.array([ids[begin - 1 : end - 1]], dtype=mx.uint32), cache=cache)[0]
        logits = logits.astype(mx.float32)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        targets = mx.array(ids[begin:end], dtype=mx.uint32)
        picked = mx.take_along_axis(logprobs, targets[:, None], axis=-1)[:, 0]
        k = min(request.top_logprobs, logprobs.shape[-1])
        top_ids = top_values = None
        if k:
            top_ids = mx.argpartition(-logprobs, kth=k - 1, axis=-1)[:, :k]
            top_values = mx.take_along_axis(logprobs, top_ids, axis=-1)
            mx.eval(picked, top_ids, top_values)
        else:
            mx.eval(picked)
        values = picked.tolist()
        alternatives: list[list[tuple[int, float]]] = [[] for _ in values]
        if top_ids is not None and top_values is not None:
            pairs = zip(top_ids.tolist(), top_values.tolist(), strict=True)
            alternatives = [list(zip(i, v, strict=True)) for i, v in pairs]
        for token, value, top in zip(ids[begin:end], values, alternatives, strict=True):
            text, raw = names(token)
            ranked = sorted(top, key=lambda pair: -pair[1])
            found.append(
                TokenLogprob(
                    token=text,
                    logprob=float(value),
                    bytes=raw,
                    top=tuple((names(i)[0], float(v), names(i)[1]) for i, v in ranked),
                )
            )
    return tuple(found)
