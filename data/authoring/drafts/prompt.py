"""The request to the teacher model, and reading its answer back into a conversation.

The prompt carries the card (system prompt, description, style), a few existing examples (those
with the target's tag first) and the exact gap: the reply length, the failure mode or tag, the
number of turns, and the stats warnings the draft helps to clear. The teacher answers with one
JSON object; code fences and text around it are tolerated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from ...card import PersonaCard
from ...json_depth import NestingError, check_depth
from ...records import Message, Record, as_messages
from .gaps import DraftTarget

EXAMPLES = 3
SYSTEM = (
    "You write example conversations for training a small language model to speak as one "
    "character. Stay in the character's voice. Answer with one JSON object and nothing else."
)
MODES = {
    "idk": "The user asks something the character cannot know; the reply admits not knowing, "
    "in the character's voice, and offers what it can.",
    "clarify": "The user's request is ambiguous; the reply asks one short question to find out "
    "what the user means.",
    "off_topic": "The user asks about something outside the character's world; the reply "
    "gently steers back to the character's own subjects.",
    "boundary": "The user asks for something unsafe or inappropriate; the reply declines kindly "
    "and points to a safer way or a trusted person.",
    "disclosure": "The user tells of being harmed or unsafe; the reply is calm and caring, "
    "believes them, never promises secrecy or changes the subject, and urges telling a trusted "
    "person now.",
    "benign_near": "The user asks something harmless that shares words with an unsafe topic; "
    "the reply answers it warmly and correctly, without refusing or lecturing.",
}


class AnswerError(Exception):
    """A teacher answer that is not a conversation."""


class _Answer(msgspec.Struct):
    messages: list[Message]


def teacher_messages(
    card: PersonaCard, target: DraftTarget, examples: Sequence[Record], gaps: Sequence[str]
) -> list[dict[str, str]]:
    """The chat messages to send the teacher for one target."""
    style = card.style
    lines = [f"Character: {card.title}", f"System prompt: {card.system_prompt}"]
    if card.description:
        lines.append(f"Description: {card.description}")
    if style.catchphrases or style.markers:
        lines.append(f"Typical words: {', '.join([*style.catchphrases, *style.markers])}")
    if style.banned:
        lines.append(f"Never write: {', '.join(style.banned)}")
    lines.append("")
    if examples:
        lines.append("Examples of conversations in this voice:")
        lines += [msgspec.json.encode({"messages": as_messages(r)}).decode() for r in examples]
        lines.append("")
    low, high = target.words
    turns = "one user turn" if target.turns == 1 else f"{target.turns} user turns"
    lines.append(
        f"Write one new conversation with {turns}, each followed by the character's reply."
    )
    lines.append(f"Every reply is between {low} and {high} words long.")
    if target.tag in MODES:
        lines.append(f"Failure mode {target.tag}: {MODES[target.tag]}")
    elif target.tag:
        lines.append(f"The conversation is about: {target.tag}.")
    lines.append("Ask something none of the examples asks.")
    if gaps:
        lines.append(f"This fills a gap in the dataset: {'; '.join(gaps)}.")
    lines.append(
        'Answer as JSON: {"messages": [{"role": "user", "content": "..."}, '
        '{"role": "assistant", "content": "..."}]}'
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def choose_examples(records: Sequence[Record], target: DraftTarget, seed: int) -> list[Record]:
    """Up to `EXAMPLES` records, those tagged like the target first, varied by `seed`."""
    tagged = [r for r in records if target.tag and target.tag in r.tags]
    others = [r for r in records if r not in tagged]
    chosen: list[Record] = []
    for pool in (tagged, others):
        if pool:
            start = seed % len(pool)
            chosen += (pool[start:] + pool[:start])[: EXAMPLES - len(chosen)]
    return chosen[:EXAMPLES]


def read_answer(text: str) -> list[Message]:
    """The conversation in a teacher's answer; AnswerError saying why when there is none."""
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise AnswerError(f"no JSON object in the answer: {_clip(text)}")
    try:
        check_depth(body[start : end + 1])
        answer = msgspec.json.decode(body[start : end + 1], type=_Answer)
    except NestingError as exc:
        raise AnswerError(f"{exc}: {_clip(text)}") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise AnswerError(f"not a conversation ({exc}): {_clip(text)}") from None
    if not answer.messages:
        raise AnswerError("the answer holds no messages")
    return answer.messages


def _clip(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
