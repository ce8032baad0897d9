"""`persona data pairs`: preference pairs built on policy, from the model's own failures.

For each training record tagged with a failure mode (`idk`, `clarify`, `off_topic`, `boundary`),
the model being tuned is asked the record's conversation (up to its last reply) through any
OpenAI-compatible API, a few times with different seeds. A reply that breaks the category's rule
(the persona's rules, `rules_for` in `data.eval.criteria`, that `persona eval` scores with, plus
the card's banned phrases and reply length) becomes `non_preferred_output`; the dataset's own
reply becomes `preferred_output`.

Only training records are read: the eval suite's held-out probes never reach the model here.
The pairs are drafts to review, written to their own file, never straight into training.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ..card import PersonaCard
from ..eval.criteria import CriteriaResult, check_reply, rules_for
from ..eval.run import ServerTarget, make_client, request_fields
from ..records import (
    FAILURE_MODES,
    Message,
    PreferenceInput,
    PreferenceRecord,
    Record,
    as_messages,
)


class Probe(msgspec.Struct, frozen=True):
    """A training record to ask again: its conversation up to the last reply, and that reply."""

    where: str
    category: str
    messages: tuple[Message, ...]
    """Ends with a user turn."""
    reply: str
    """The dataset's reply: the preferred output."""


class PairsReport(msgspec.Struct, frozen=True):
    """What `build_pairs` did: the pairs, and how often each category's rule was broken."""

    pairs: list[PreferenceRecord]
    probes: int
    replies: int
    broken: dict[str, int]
    """Replies that broke their category's rule, per category."""
    asked: dict[str, int]
    """Replies sampled, per category."""
    skipped: list[str]
    """`file:line` of records whose own reply breaks its rule (never a preferred output)."""
    errors: list[str]
    cut: dict[str, int] = {}
    """Rule-breaking replies that ran into max_tokens, per category; counted as broken, never
    paired: a pair stores a finished message, so training would see an end of turn there that
    the model never wrote, and a preference method would learn to lower it."""
    unfit: dict[str, int] = {}
    """Rule-breaking replies whose pair the trainer would refuse (`fits` said no: too long for
    `training.max_seq_length`, say), per category; counted as broken, never paired."""


def failure_mode(record: Record) -> str | None:
    """The record's first failure-mode tag, if any."""
    return next((t for t in record.tags if t in FAILURE_MODES), None)


def judge(card: PersonaCard, category: str, reply: str) -> CriteriaResult:
    """A reply against the persona's rule for its category, the card's banned phrases and
    reply length."""
    return check_reply(
        reply,
        category=category,
        must_not_include=card.style.banned,
        length=card.style.reply_words,
        persona_markers=[*card.style.catchphrases, *card.style.markers],
        rules=rules_for(card),
    )


def probes_of(
    rows: Sequence[tuple[str, Record]],
    categories: Sequence[str],
    card: PersonaCard | None = None,
) -> list[Probe]:
    """The failure-mode records of a training set, as probes (other records are left out).

    A probe asks the conversation up to a reply and prefers that reply. With `card`, a
    multi-turn record is cut before its last reply that meets the category's rule (a tag may be
    about any turn: "I don't know" can come after a first answer), else before its last reply.
    """
    found: list[Probe] = []
    for where, record in rows:
        category = failure_mode(record)
        messages = as_messages(record)
        if category not in categories or len(messages) < 2 or messages[-1].role != "assistant":
            continue
        last = len(messages) - 1
        at = last
        if card is not None:
            at = next(
                (
                    i
                    for i in range(last, 0, -1)
                    if messages[i].role == "assistant"
                    and judge(card, category, messages[i].content).passed
                ),
                last,
            )
        found.append(Probe(where, category, tuple(messages[:at]), messages[at].content))
    return found


async def build_pairs(
    card: PersonaCard,
    probes: Sequence[Probe],
    model: str,
    *,
    target: ServerTarget | None = None,
    samples: int = 2,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
    fits: Callable[[PreferenceRecord], bool] | None = None,
) -> PairsReport:
    """Sample `samples` replies per probe from `model`; pair the first rule-breaking one that
    the model ended itself (a reply cut at max_tokens breaks the rule but is never paired) and
    that `fits` accepts (the caller's check that training would take the pair, for example the
    length limit with the persona's tokenizer).

    A model id that is not the persona gets the card's system prompt and sampling, as in
    `persona eval`. `client` may be an `openai.AsyncOpenAI` the caller owns.
    """
    import openai

    target = target or ServerTarget()
    owned = client is None
    if client is None:
        client = make_client(target)
    gate = asyncio.Semaphore(max(1, target.concurrency))
    persona_model = model == card.name or model.startswith(card.name + "@")
    asked: Counter[str] = Counter()
    broken: Counter[str] = Counter()
    errors: list[str] = []
    passes = [judge(card, p.category, p.reply).passed for p in probes]
    skipped = [p.where for p, ok in zip(probes, passes, strict=True) if not ok]
    usable = [p for p, ok in zip(probes, passes, strict=True) if ok]
    total, done = len(usable) * samples, 0

    cut: Counter[str] = Counter()
    unfit: Counter[str] = Counter()

    async def ask(probe: Probe, i: int) -> tuple[str, str | None] | None:
        nonlocal done
        messages = [{"role": m.role, "content": m.content} for m in probe.messages]
        if not persona_model and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": card.system_prompt})
        async with gate:
            try:
                reply = await client.chat.completions.create(
                    model=model,
                    messages=messages,  # type: ignore[arg-type]
                    seed=seed + i,
                    extra_body=request_fields(card, model) or None,
                )
                choice = reply.choices[0]
                answer: tuple[str, str | None] | None = (
                    choice.message.content or "",
                    choice.finish_reason,
                )
            except openai.OpenAIError as exc:
                errors.append(f"{probe.where}: {exc}")
                answer = None
        done += 1
        if progress is not None:
            progress(done, total)
        return answer

    async def pair(probe: Probe) -> PreferenceRecord | None:
        answers = await asyncio.gather(*(ask(probe, i) for i in range(samples)))
        chosen: PreferenceRecord | None = None
        for answer in answers:
            if answer is None:
                continue
            text, finish = answer
            asked[probe.category] += 1
            if not text.strip() or judge(card, probe.category, text).passed:
                continue
            broken[probe.category] += 1
            if finish == "length":
                cut[probe.category] += 1
            elif chosen is None and text.strip() != probe.reply.strip():
                record = PreferenceRecord(
                    input=PreferenceInput(probe.messages),
                    preferred_output=(Message("assistant", probe.reply),),
                    non_preferred_output=(Message("assistant", text),),
                    tags=(probe.category,),
                )
                if fits is None or fits(record):
                    chosen = record
                else:
                    unfit[probe.category] += 1
        return chosen

    try:
        made = await asyncio.gather(*(pair(p) for p in usable))
    finally:
        if owned:
            await client.close()
    return PairsReport(
        pairs=[p for p in made if p is not None],
        probes=len(usable),
        replies=sum(asked.values()),
        broken=dict(sorted(broken.items())),
        asked=dict(sorted(asked.items())),
        skipped=skipped,
        errors=errors,
        cut=dict(sorted(cut.items())),
        unfit=dict(sorted(unfit.items())),
    )


def encode_pairs_file(pairs: Sequence[PreferenceRecord]) -> bytes:
    """The pairs as JSONL in OpenAI's DPO format."""
    return b"".join(msgspec.json.encode(p) + b"\n" for p in pairs)


__all__ = ["PairsReport", "Probe", "build_pairs", "encode_pairs_file", "probes_of"]
