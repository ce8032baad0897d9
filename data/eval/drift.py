"""Drift over long conversations: does the persona hold from the first turn to the N-th?

Each held-out conversation script (`{"id", "turns"}` lines of the eval suite) is played for N
turns: the user turns come from the script, the replies are the model's own, and every reply is
sent back as history. Every reply is scored like a single probe (voice markers, catchphrases,
banned phrases, its turn's category rule, reply length, echo of the system prompt or the user's
message); the scores are then grouped by turn index, with the change and slope from first to last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from ..card import PersonaCard
from .criteria import check_reply, rules_for
from .metrics import Drift, MemoIndex, TurnScores, contains, drift, word_count
from .run import SampleResult, ServerTarget, ask, make_client, request_fields, sample_result
from .suite import ConversationScript


def turns_problem(scripts: Sequence[ConversationScript], turns: int) -> str | None:
    """Why `turns` turns cannot be played on these scripts, or None when they can."""
    if turns >= 2 and scripts and all(len(s.turns) >= turns for s in scripts):
        return None
    have = ", ".join(f"{s.id} ({len(s.turns)})" for s in scripts) or "none"
    return (
        f"turns {turns} needs 2 or more turns and conversation scripts at least that long in "
        f"the eval suite; scripts: {have}"
    )


def turn_scores(turn: int, samples: Sequence[SampleResult], card: PersonaCard) -> TurnScores:
    """The persona metrics of every reply at one turn index."""
    ok = [s for s in samples if s.error is None]
    n = len(ok) or 1
    style = card.style
    low, high = style.reply_words[0], style.reply_words[1]

    def share(test: Callable[[SampleResult], bool]) -> float:
        return sum(1 for s in ok if test(s)) / n

    def has(s: SampleResult, phrases: Sequence[str]) -> bool:
        return any(contains(s.text, p) for p in phrases)

    return TurnScores(
        turn=turn,
        replies=len(ok),
        completion_rate=share(lambda s: s.finish_reason == "stop"),
        marker_rate=share(lambda s: has(s, [*style.catchphrases, *style.markers])),
        catchphrase_rate=share(lambda s: has(s, style.catchphrases)),
        banned_rate=share(lambda s: has(s, style.banned)),
        criteria_pass=share(lambda s: s.criteria.passed),
        length_in_range=share(lambda s: low <= word_count(s.text) <= high),
        echo_rate=share(lambda s: s.echo is not None),
    )


def drift_of(model: str, samples: Sequence[SampleResult], card: PersonaCard, turns: int) -> Drift:
    """Group one model's drift replies by turn index and measure the trend."""
    return drift(
        model,
        [turn_scores(t, [s for s in samples if s.turn == t], card) for t in range(1, turns + 1)],
    )


async def run_drift(
    card: PersonaCard,
    scripts: Sequence[ConversationScript],
    training_replies: Sequence[str],
    models: Sequence[str],
    turns: int,
    *,
    target: ServerTarget | None = None,
    samples: int = 1,
    seed: int = 0,
    overrides: dict[str, float | int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
    on_sample: Callable[[SampleResult], None] | None = None,
) -> tuple[list[Drift], list[SampleResult]]:
    """Play every script for `turns` turns on every model; return the drift and every reply
    (each also handed to `on_sample` as it is scored).

    Raises ValueError when a script has fewer than `turns` user turns.
    """
    short = [s.id for s in scripts if len(s.turns) < turns]
    if short:
        raise ValueError(f"--turns {turns}: these scripts have fewer turns: {', '.join(short)}")
    target = target or ServerTarget()
    owned = client is None
    if client is None:
        client = make_client(target)
    memo = MemoIndex(training_replies)
    gate = asyncio.Semaphore(max(1, target.concurrency))
    rules = rules_for(card)
    total = len(models) * len(scripts) * samples * turns
    done = 0

    async def conversation(model: str, script: ConversationScript, i: int) -> list[SampleResult]:
        nonlocal done
        persona = model == card.name or model.startswith(card.name + "@")
        history: list[dict[str, str]] = []
        if not persona:
            history.append({"role": "system", "content": card.system_prompt})
        fields = request_fields(card, model, overrides)
        results: list[SampleResult] = []
        for index, turn in enumerate(script.turns[:turns], start=1):
            history.append({"role": "user", "content": turn.content})
            async with gate:
                reply = await ask(client, model, list(history), seed + i, fields)
            verdict = check_reply(
                reply.text,
                category=turn.category,
                must_not_include=card.style.banned,
                length=card.style.reply_words,
                persona_markers=[*card.style.catchphrases, *card.style.markers],
                system_prompt=card.system_prompt,
                user_message=turn.content,
                rules=rules,
            )
            scored = sample_result(
                reply,
                script.id,
                turn.category,
                model,
                i,
                seed + i,
                verdict,
                memo,
                card,
                turn.content,
                turn=index,
            )
            results.append(scored)
            done += 1
            if progress is not None:
                progress(done, total)
            if on_sample is not None:
                on_sample(scored)
            if reply.error is not None:
                break  # the conversation cannot go on without the reply
            history.append({"role": "assistant", "content": reply.text})
        return results

    try:
        played = await asyncio.gather(
            *(conversation(m, s, i) for m in models for s in scripts for i in range(samples))
        )
    finally:
        if owned:
            await client.close()
    flat = [r for conv in played for r in conv]
    return [drift_of(m, [r for r in flat if r.model == m], card, turns) for m in models], flat
