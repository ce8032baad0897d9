"""Contrast pairs scored without sampling: does the served model prefer the good reply?

For each eval case with a `chosen` reply and `rejected` ones, every reply is teacher-forced
through the served model over HTTP: a chat completion whose messages are the case's conversation
followed by the reply, with `echo: true`, `continue_final_message: true`,
`add_generation_prompt: false`, `max_tokens: 0` and `logprobs: true` (vLLM's way of scoring a
final message; this server implements it in `server/api/scoring.py`). The persona's own ids get
the card's system prompt from the server; other ids get it in the request, as `persona eval`
sends it. A reply's score is its mean log probability per token (length-normalised, so a short
reply does not win for being short). A pair is won when the chosen reply scores higher. The
perplexity of the chosen replies, `exp(-mean logprob)` over all their tokens, is a coherence
signal: a model that finds good replies in its own voice unlikely is not speaking that voice.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ..card import PersonaCard
from .suite import EvalCase

SCORE_FIELDS = {"echo": True, "continue_final_message": True, "add_generation_prompt": False}
"""The request fields that turn a chat completion into a score of its final message."""


class ReplyScore(msgspec.Struct, frozen=True):
    """One reply of a case, teacher-forced: its tokens and their summed log probability."""

    case_id: str
    category: str
    model: str
    side: str
    """`chosen`, or `rejected` (then `index` says which)."""
    index: int
    tokens: int
    logprob: float
    """Sum over the reply's tokens (natural log)."""
    error: str | None = None

    @property
    def mean(self) -> float:
        """Mean log probability per token (-inf for an empty or failed reply)."""
        return self.logprob / self.tokens if self.tokens and self.error is None else -math.inf


class CategoryContrast(msgspec.Struct, frozen=True):
    """Contrast accuracy and gold perplexity of one category (or of the whole suite)."""

    pairs: int
    won: int
    accuracy: float
    """Share of pairs where the chosen reply has the higher mean logprob."""
    gold_tokens: int
    gold_perplexity: float | None
    """exp(-mean logprob per token) over the chosen replies; None without any."""


class ContrastScores(msgspec.Struct, frozen=True):
    """One model's contrast results, overall and per category."""

    model: str
    overall: CategoryContrast
    by_category: dict[str, CategoryContrast]
    errors: int = 0
    """Replies the server could not score."""


def score_messages(case: EvalCase, card: PersonaCard, model: str, reply: str) -> list[dict]:
    """The chat messages that score `reply` to `case` on `model`."""
    messages = [{"role": m.role, "content": m.content} for m in case.messages]
    persona = model == card.name or model.startswith(card.name + "@")
    if not persona and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": card.system_prompt})
    return [*messages, {"role": "assistant", "content": reply}]


async def score_reply(client: Any, model: str, messages: list[dict]) -> tuple[int, float]:
    """(tokens, summed logprob) of the final message; raises the client's errors."""
    reply = await client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=0,
        logprobs=True,
        extra_body=SCORE_FIELDS,
    )
    content = reply.choices[0].logprobs.content if reply.choices[0].logprobs else None
    if not content:
        raise ValueError("the server returned no logprobs for the final message")
    return len(content), sum(item.logprob for item in content)


def summarise(scores: Sequence[ReplyScore]) -> CategoryContrast:
    """Pairs won and gold perplexity over the scores of some cases (one model)."""
    by_case: dict[str, list[ReplyScore]] = defaultdict(list)
    for s in scores:
        by_case[s.case_id].append(s)
    pairs = won = gold_tokens = 0
    gold_logprob = 0.0
    for replies in by_case.values():
        chosen = next((r for r in replies if r.side == "chosen"), None)
        if chosen is None or chosen.error is not None:
            continue
        gold_tokens += chosen.tokens
        gold_logprob += chosen.logprob
        for rejected in (r for r in replies if r.side == "rejected" and r.error is None):
            pairs += 1
            won += chosen.mean > rejected.mean
    perplexity = math.exp(-gold_logprob / gold_tokens) if gold_tokens else None
    return CategoryContrast(pairs, won, won / pairs if pairs else 0.0, gold_tokens, perplexity)


def contrast_scores(model: str, scores: Sequence[ReplyScore]) -> ContrastScores:
    """Fold one model's reply scores into its per-category contrast results."""
    mine = [s for s in scores if s.model == model]
    categories = sorted({s.category for s in mine})
    return ContrastScores(
        model=model,
        overall=summarise(mine),
        by_category={c: summarise([s for s in mine if s.category == c]) for c in categories},
        errors=sum(s.error is not None for s in mine),
    )


async def run_contrast(
    card: PersonaCard,
    cases: Sequence[EvalCase],
    models: Sequence[str],
    client: Any,
    *,
    concurrency: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ContrastScores], list[ReplyScore]]:
    """Score every chosen and rejected reply of `cases` on every model; API errors are kept
    per reply (a pair with a failed side is left out), never raised."""
    import openai

    gate = asyncio.Semaphore(max(1, concurrency))
    jobs = [
        (model, case, side, index, text)
        for model in models
        for case in cases
        if case.chosen and case.rejected
        for side, index, text in [
            ("chosen", 0, case.chosen),
            *(("rejected", i, t) for i, t in enumerate(case.rejected)),
        ]
    ]
    done = 0

    async def one(model: str, case: EvalCase, side: str, index: int, text: str) -> ReplyScore:
        nonlocal done
        messages = score_messages(case, card, model, text)
        error: str | None = None
        tokens, logprob = 0, 0.0
        async with gate:
            try:
                tokens, logprob = await score_reply(client, model, messages)
            except (openai.OpenAIError, ValueError) as exc:
                error = str(exc)
        done += 1
        if progress is not None:
            progress(done, len(jobs))
        return ReplyScore(case.id, case.category, model, side, index, tokens, logprob, error)

    scores = list(await asyncio.gather(*(one(*job) for job in jobs)))
    return [contrast_scores(m, scores) for m in models], scores
