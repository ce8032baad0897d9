"""The guard around one generation: score the latest user turn, then steer, answer with an
author's reply, or let the model answer; with `check_replies`, check what it wrote.

Every route that generates for a persona (chat, completions, Responses) calls `guard_jobs`. No
request field reaches this decision: only the card's `[guard]` and the operator's `--no-guard`.
With `check_replies` a reply is held back until it is checked, streams included: a flagged reply
is regenerated once with steering, and one still flagged is replaced by an author's reply. The
checked reply is then streamed in word-sized pieces, so a client never sees text that is later
taken back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET

from data.guard import GuardCard
from data.tokens import plain_ids
from server.api.models import Resolved
from server.errors import AppError
from server.guard import GuardMissingError, LoadedGuard, Score, pick_reply
from server.runner import Canned, Job, Outcome
from server.state import ServerState
from server.wire.openai import PersonaGuard

if TYPE_CHECKING:
    from litestar.types import Receive

    from server.engine.engine import Engine

SEVERITY = {"none": 0, "steer": 1, "regenerated": 2, "reply": 3, "replaced": 4}
"""Which decision a response reports when its prompts or choices differ."""


class GuardUnavailableError(AppError):
    """A persona's card asks for a guard that is not trained or was refused: nothing is served
    unguarded."""

    status = 503
    type = "server_error"
    default_code = "guard_unavailable"


@dataclass(frozen=True)
class Guarded:
    """The jobs to run (some may be canned) and the decision to report."""

    jobs: list[Job]
    verdict: Any
    """A `PersonaGuard`, or UNSET when the model has no guard."""


Build = Callable[[int, str | None], list[Job]]
"""(prompt index, steering guidance or None) -> that prompt's jobs, one per choice."""


async def guard_jobs(
    state: ServerState,
    engine: Engine,
    resolved: Resolved,
    texts: Sequence[str],
    build: Build,
    receive: Receive,
) -> Guarded:
    """Screen each prompt's latest user turn and return what to run (see the module doc)."""
    persona = resolved.persona
    card = persona.card if persona else None
    try:
        guard = state.guards.for_card(card, engine)
    except GuardMissingError as exc:
        raise GuardUnavailableError(str(exc)) from None
    if guard is None or card is None or card.guard is None:
        return Guarded([job for i in range(len(texts)) for job in build(i, None)], UNSET)
    policy = card.guard
    start = time.perf_counter()
    scores = await state.guards.score(engine, guard, list(texts), policy.threshold)
    state.metrics.guard_seconds.observe(time.perf_counter() - start)
    jobs: list[Job] = []
    actions: list[str] = []
    for index, (text, score) in enumerate(zip(texts, scores, strict=True)):
        action = policy.categories[score.category].action if score.category else "none"
        state.guards.record(card.name, "prompt", score, action, text)
        actions.append(action)
        guidance = policy.categories[score.category].guidance if action == "steer" else None
        built = build(index, guidance or None)
        if action == "reply":
            rng = _rng(built[0])
            built = [_canned(engine, job, pick_reply(policy, score.category, rng)) for job in built]
        jobs += built
    worst = max(range(len(scores)), key=lambda i: (SEVERITY[actions[i]], scores[i].score))
    verdict = PersonaGuard(scores[worst].category, round(scores[worst].score, 4), actions[worst])
    if not policy.check_replies or all(a == "reply" for a in actions):
        return Guarded(jobs, verdict)
    return await _check_replies(state, engine, guard, policy, card.name, jobs, build,
                                texts, scores, verdict, receive)  # fmt: skip


async def _check_replies(
    state: ServerState,
    engine: Engine,
    guard: LoadedGuard,
    policy: GuardCard,
    persona: str,
    jobs: list[Job],
    build: Build,
    texts: Sequence[str],
    prompt_scores: list[Score],
    verdict: PersonaGuard,
    receive: Receive,
) -> Guarded:
    """Generate, check each reply, regenerate a flagged one once with steering, replace one that
    stays flagged; the checked replies come back as canned jobs."""
    runner = state.runner
    assert runner is not None
    per_prompt = len(jobs) // len(texts)
    outcomes = await runner.collect(jobs, receive)
    final: list[Outcome] = list(outcomes)
    live = [i for i, job in enumerate(jobs) if job.canned is None]
    reply_scores = await state.guards.score(
        engine, guard, [outcomes[i].text for i in live], policy.threshold
    )
    action, worst_reply = verdict.action, max((s.score for s in reply_scores), default=0.0)
    retry: dict[int, tuple[Job, Score]] = {}
    for i, score in zip(live, reply_scores, strict=True):
        prompt_score = prompt_scores[i // per_prompt]
        state.guards.record(persona, "reply", score, "regenerated" if score.flagged else "none")
        if not score.flagged:
            continue
        category = score.category or prompt_score.category
        steer = policy.categories.get(category or "")
        guidance = steer.guidance if steer is not None and steer.guidance else None
        if guidance is None:
            prompt_category = policy.categories.get(prompt_score.category or "")
            guidance = prompt_category.guidance if prompt_category else None
        if guidance:
            retry[i] = (build(i // per_prompt, guidance)[i % per_prompt], score)
        else:
            final[i] = _replacement(engine, jobs[i], policy, category)
            action = _worse(action, "replaced")
    if retry:
        again = await runner.collect([job for job, _ in retry.values()], receive)
        rescored = await state.guards.score(engine, guard, [o.text for o in again],
                                            policy.threshold)  # fmt: skip
        for (i, (job, first)), outcome, score in zip(retry.items(), again, rescored, strict=True):
            if score.flagged:
                state.guards.record(persona, "reply", score, "replaced")
                final[i] = _replacement(engine, job, policy, score.category or first.category)
                action = _worse(action, "replaced")
            else:
                final[i] = outcome
                action = _worse(action, "regenerated")
    checked = [
        replace(job, canned=job.canned or _as_canned(outcome))
        for job, outcome in zip(jobs, final, strict=True)
    ]
    final_verdict = msgspec.structs.replace(
        verdict, action=action, reply_score=round(worst_reply, 4)
    )
    return Guarded(checked, final_verdict)


def _worse(current: str, new: str) -> str:
    return new if SEVERITY[new] > SEVERITY[current] else current


def _rng(job: Job) -> random.Random:
    """Unseeded: any reply. Seeded: the same reply for the same seed and prompt, and different
    prompts under one seed (an eval run) spread over the author's variants."""
    seed = job.request.params.seed
    if seed is None:
        return random.Random()
    return random.Random(f"{seed}:" + ",".join(map(str, job.request.prompt)))


def _canned(engine: Engine, job: Job, text: str) -> Job:
    """A job that answers with `text` as written."""
    count = len(plain_ids(engine.tokenizer, text))
    canned = Canned(text, "stop", len(job.request.prompt), count)
    return replace(job, canned=canned)


def _replacement(engine: Engine, job: Job, policy: GuardCard, category: str | None) -> Outcome:
    text = pick_reply(policy, category, _rng(job))
    count = len(plain_ids(engine.tokenizer, text))
    return Outcome(text, "stop", len(job.request.prompt), count, (), None)


def _as_canned(outcome: Outcome) -> Canned:
    return Canned(outcome.text, outcome.finish_reason, outcome.prompt_tokens,
                  outcome.completion_tokens, outcome.adapter_version)  # fmt: skip


def steer_messages(messages: list[dict[str, str]], guidance: str | None) -> list[dict[str, str]]:
    """The conversation with `guidance` added at the end of its last user turn (this reply only)."""
    if not guidance:
        return messages
    out = list(messages)
    for index in range(len(out) - 1, -1, -1):
        if out[index]["role"] == "user":
            out[index] = {"role": "user", "content": f"{out[index]['content']}\n\n{guidance}"}
            return out
    return [*out, {"role": "user", "content": guidance}]


def latest_user_text(messages: Sequence[dict[str, str]]) -> str:
    """The latest user turn of a templated conversation (the system block excluded)."""
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"]
    return ""


USER_OPEN = "<start_of_turn>user\n"
TURN_CLOSE = "<end_of_turn>"


def raw_user_text(prompt: str) -> str:
    """The latest user turn of a raw completion prompt written in the chat template's markup,
    else the whole prompt (a raw prompt has no other notion of a user turn)."""
    start = prompt.rfind(USER_OPEN)
    if start < 0:
        return prompt.replace("<bos>", "").strip()
    body = prompt[start + len(USER_OPEN) :]
    end = body.find(TURN_CLOSE)
    return body[:end] if end >= 0 else body


def steer_raw(prompt: str, guidance: str | None) -> str:
    """A raw prompt with guidance at the end of its latest user turn, else before its text."""
    if not guidance:
        return prompt
    start = prompt.rfind(USER_OPEN)
    if start >= 0:
        end = prompt.find(TURN_CLOSE, start)
        if end >= 0:
            return f"{prompt[:end]}\n\n{guidance}{prompt[end:]}"
        return f"{prompt}\n\n{guidance}"
    head = "<bos>" if prompt.startswith("<bos>") else ""
    return f"{head}{guidance}\n\n{prompt[len(head) :]}"
