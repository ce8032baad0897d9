"""Run an eval suite against model ids through any OpenAI-compatible API, and score it.

Each case is sent N times per model with seeds `seed + i`, using the persona's defaults unless
overridden. A model id that is not the persona itself (the base model, another endpoint) gets the
persona's system prompt and its `[sampling]` values sent explicitly, so "prompting alone", sampled
the same way, is the baseline a trained adapter must beat. The persona's own ids send only the
overrides: the server applies the card there.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ..card import PersonaCard
from ..client import openai_client
from .contrast import ContrastScores, ReplyScore, run_contrast
from .criteria import CriteriaResult, check_case_reply, rules_for
from .judge import Judge, JudgeScore
from .metrics import (
    MEMO_N,
    Drift,
    LengthStats,
    Markers,
    MemoIndex,
    Memorisation,
    Openings,
    echo_kind,
    length_stats,
    markers,
    memorisation,
    openings,
    repetition,
    word_count,
)
from .suite import EvalCase

WEIGHTS = {
    "completion": 0.2,
    "length_in_range": 0.15,
    "no_loops": 0.15,
    "not_memorised": 0.1,
    "criteria": 0.25,
    "voice": 0.1,
    "no_banned": 0.05,
}
"""How the aggregate score (0-1) weighs each component; documented in docs/evaluation.md."""


class SampleResult(msgspec.Struct, frozen=True):
    """One reply to one case from one model."""

    case_id: str
    category: str
    model: str
    sample: int
    seed: int
    text: str
    finish_reason: str
    words: int
    completion_tokens: int
    looping: bool
    memorised_span: int
    criteria: CriteriaResult
    adapter: str | None = None
    error: str | None = None
    judge: JudgeScore | None = None
    echo: str | None = None
    """`system` when the reply recites the system prompt, `user` when it parrots the user."""
    turn: int = 0
    """In a drift conversation, the 1-based turn index (0 for a single probe)."""

    @property
    def label(self) -> str:
        """The case id, with the turn for a drift reply (`drift-01 turn 3`)."""
        return f"{self.case_id} turn {self.turn}" if self.turn else self.case_id


class ModelScores(msgspec.Struct, frozen=True):
    """Every metric for one model over the whole suite."""

    model: str
    replies: int
    errors: int
    completion_rate: float
    length: LengthStats
    looping_rate: float
    distinct_1: float
    distinct_2: float
    memorisation: Memorisation
    markers: Markers
    criteria_pass: float
    by_category: dict[str, float]
    judge: float | None
    judge_status: str
    score: float
    adapter: str | None = None
    echo_rate: float = 0.0
    """Share of replies that recite the system prompt or parrot the user's message."""
    system_echo_rate: float = 0.0
    """Share of replies that recite the system prompt."""
    openings: Openings = Openings("", 0.0, {})
    """The style share: how many replies open with the same first words."""


class EvalResult(msgspec.Struct, frozen=True):
    """A whole evaluation: per-model scores and every sample."""

    persona: str
    models: list[ModelScores]
    samples: list[SampleResult]
    seed: int
    samples_per_prompt: int
    created: float
    turns: int = 0
    """Turns per drift conversation (`--turns`); 0 when none were run."""
    drift: list[Drift] = []
    drift_samples: list[SampleResult] = []
    contrast: list[ContrastScores] = []
    """Per model, contrast-pair accuracy and gold perplexity (`data/eval/contrast.py`)."""
    contrast_replies: list[ReplyScore] = []


class ServerTarget(msgspec.Struct, frozen=True):
    """The OpenAI-compatible server requests go to: its URL and key, how many at once, and how
    long one may take (seconds)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str = "not-needed"
    concurrency: int = 4
    timeout: float = 600.0


def aggregate(
    model: str,
    samples: Sequence[SampleResult],
    card: PersonaCard,
    reference: Sequence[int],
    memo: MemoIndex,
    judge_status: str,
) -> ModelScores:
    """Fold the samples of one model into its scores."""
    ok = [s for s in samples if s.error is None]
    texts = [s.text for s in ok]
    n = len(ok) or 1
    length = length_stats(texts, card.style.reply_words, reference)
    reps = [repetition(t) for t in texts]
    memo_result = memorisation(texts, memo) if texts else Memorisation(0.0, 0)
    voice = markers(texts, card.style.catchphrases, card.style.markers, card.style.banned)
    by_cat: dict[str, list[bool]] = defaultdict(list)
    for s in ok:
        by_cat[s.category].append(s.criteria.passed)
    judged = [s.judge.score for s in ok if s.judge is not None]
    completion = sum(s.finish_reason == "stop" for s in ok) / n
    looping = sum(r.looping for r in reps) / n
    criteria_pass = sum(s.criteria.passed for s in ok) / n
    parts = {
        "completion": completion,
        "length_in_range": length.in_range,
        "no_loops": 1.0 - looping,
        "not_memorised": 1.0 - memo_result.share,
        "criteria": criteria_pass,
        "voice": voice.marker_rate,
        "no_banned": 1.0 - voice.banned_rate,
    }
    score = sum(WEIGHTS[k] * v for k, v in parts.items()) if ok else 0.0
    adapters = {s.adapter for s in ok if s.adapter}
    return ModelScores(
        model=model,
        replies=len(ok),
        errors=len(samples) - len(ok),
        completion_rate=completion,
        length=length,
        looping_rate=looping,
        distinct_1=sum(r.distinct_1 for r in reps) / n,
        distinct_2=sum(r.distinct_2 for r in reps) / n,
        memorisation=memo_result,
        markers=voice,
        criteria_pass=criteria_pass,
        by_category={k: sum(v) / len(v) for k, v in sorted(by_cat.items())},
        judge=sum(judged) / len(judged) if judged else None,
        judge_status=judge_status,
        score=score,
        adapter=", ".join(sorted(adapters)) or None,
        echo_rate=sum(s.echo is not None for s in ok) / n,
        system_echo_rate=sum(s.echo == "system" for s in ok) / n,
        openings=openings(texts),
    )


class Reply(msgspec.Struct, frozen=True):
    """What came back for one request (or the error that did)."""

    text: str
    finish_reason: str
    completion_tokens: int
    adapter: str | None
    error: str | None


async def ask(
    client: Any, model: str, messages: list[dict[str, str]], seed: int, fields: dict[str, Any]
) -> Reply:
    """One chat completion; an API error becomes a Reply carrying it (never raised)."""
    import openai

    try:
        reply = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            seed=seed,
            extra_body=fields or None,
        )
    except openai.OpenAIError as exc:
        return Reply("", "error", 0, None, str(exc))
    choice = reply.choices[0]
    adapter = getattr(reply, "persona_adapter", None) or (reply.model_extra or {}).get(
        "persona_adapter"
    )
    return Reply(
        text=choice.message.content or "",
        finish_reason=choice.finish_reason or "stop",
        completion_tokens=reply.usage.completion_tokens if reply.usage else 0,
        adapter=adapter,
        error=None,
    )


def sample_result(
    reply: Reply,
    case_id: str,
    category: str,
    model: str,
    sample: int,
    seed: int,
    verdict: CriteriaResult,
    memo: MemoIndex,
    card: PersonaCard,
    user_message: str,
    judged: JudgeScore | None = None,
    turn: int = 0,
) -> SampleResult:
    """Score one reply into a SampleResult."""
    text = reply.text
    return SampleResult(
        case_id=case_id,
        category=category,
        model=model,
        sample=sample,
        seed=seed,
        text=text,
        finish_reason=reply.finish_reason,
        words=word_count(text),
        completion_tokens=reply.completion_tokens,
        looping=repetition(text).looping,
        memorised_span=memo.longest_shared(text) if text else 0,
        criteria=verdict,
        adapter=reply.adapter,
        error=reply.error,
        judge=judged,
        echo=echo_kind(text, card.system_prompt, user_message) if text else None,
        turn=turn,
    )


def _is_persona(card: PersonaCard, model: str) -> bool:
    return model == card.name or model.startswith(card.name + "@")


def _messages(case: EvalCase, card: PersonaCard, model: str) -> list[dict[str, str]]:
    messages = [{"role": m.role, "content": m.content} for m in case.messages]
    if not _is_persona(card, model) and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": card.system_prompt})
    return messages


def make_client(target: ServerTarget) -> Any:
    """An `openai.AsyncOpenAI` for the target server, with no retries (a 4xx is an answer)."""
    return openai_client(target.base_url, target.api_key, timeout=target.timeout)


def request_fields(
    card: PersonaCard, model: str, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The sampling fields a request to `model` carries: the card's unless it is the persona."""
    fields: dict[str, Any] = {}
    if not _is_persona(card, model):
        fields.update(msgspec.to_builtins(card.sampling))
        fields.pop("seed", None)  # each sample has its own
    fields.update(overrides or {})
    return fields


async def run_eval(
    card: PersonaCard,
    cases: Sequence[EvalCase],
    training_replies: Sequence[str],
    models: Sequence[str],
    *,
    target: ServerTarget | None = None,
    samples: int = 1,
    seed: int = 0,
    overrides: dict[str, float | int] | None = None,
    judge: Judge | None = None,
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
    sample: bool = True,
    contrast: bool = True,
    on_sample: Callable[[SampleResult], None] | None = None,
) -> EvalResult:
    """Evaluate every model on every case, `samples` times each, and score the replies.

    With `contrast`, the cases' chosen/rejected replies are also teacher-forced on every model
    (`contrast.py`); `sample=False` skips the sampled replies (and their scores) altogether.
    `on_sample` gets each sampled reply as soon as it is scored.
    `client` may be an `openai.AsyncOpenAI` the caller owns (tests pass one bound to an
    in-process app); otherwise one is made for `target` and closed at the end.
    """
    target = target or ServerTarget()
    owned = client is None
    if client is None:
        client = make_client(target)
    memo = MemoIndex(training_replies)
    reference = [word_count(t) for t in training_replies]
    gate = asyncio.Semaphore(max(1, target.concurrency))
    rules = rules_for(card)
    paired = [c for c in cases if c.chosen and c.rejected] if contrast else []
    pair_jobs = len(models) * sum(1 + len(c.rejected) for c in paired)
    total = (len(models) * len(cases) * samples if sample else 0) + pair_jobs
    done = 0

    async def one(model: str, case: EvalCase, i: int) -> SampleResult:
        nonlocal done
        sample_seed = seed + i
        async with gate:
            reply = await ask(
                client, model, _messages(case, card, model), sample_seed,
                request_fields(card, model, overrides),
            )  # fmt: skip
        verdict = check_case_reply(reply.text, case, card, rules)
        judged = None
        if judge is not None and reply.error is None:
            judged = await judge.score(card, case, reply.text)
        done += 1
        if progress is not None:
            progress(done, total)
        scored = sample_result(reply, case.id, case.category, model, i, sample_seed, verdict,
                               memo, card, case.prompt, judged)  # fmt: skip
        if on_sample is not None:
            on_sample(scored)
        return scored

    def paired_progress(finished: int, _: int) -> None:
        if progress is not None:
            progress(done + finished, total)

    try:
        pair_scores: tuple[list[ContrastScores], list[ReplyScore]] = ([], [])
        if paired:
            pair_scores = await run_contrast(
                card, paired, models, client, concurrency=target.concurrency,
                progress=paired_progress,
            )  # fmt: skip
            done += pair_jobs
        results = []
        if sample:
            results = await asyncio.gather(
                *(one(m, c, i) for m in models for c in cases for i in range(samples))
            )
    finally:
        if owned:
            await client.close()
    judge_status = "skipped (no --judge-url)" if judge is None else f"judged by {judge.model}"
    scores = [
        aggregate(m, [r for r in results if r.model == m], card, reference, memo, judge_status)
        for m in models
        if sample
    ]
    return EvalResult(
        card.name, scores, list(results), seed, samples, time.time(),
        contrast=pair_scores[0], contrast_replies=pair_scores[1],
    )  # fmt: skip


__all__ = ["MEMO_N", "EvalResult", "ModelScores", "SampleResult", "ServerTarget", "run_eval"]
