"""A persona's guard: the card's `[guard]` table and the labelled prompts a guard learns from.

The card says what is out of bounds for the persona's audience (`policy`), which categories the
guard watches and what each one does (`steer` adds guidance to the one reply, `reply` answers
with one of the author's own replies), the decision threshold, whether replies are checked too,
and which shipped general sets (`include = ["children"]`) join the persona's own data.

Training examples are user turns: a record tagged with a guard category is flagged under that
category, every other record (`benign_near` above all) is clear. Pure data: no MLX here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from .jsonl import split_records

Action = Literal["steer", "reply"]
ACTIONS = ("steer", "reply")
CLEAR = "clear"
"""The label of a prompt no category covers."""
CATEGORY_PATTERN = "^[a-z][a-z0-9_]{0,39}$"
GENERAL_SETS = ("children",)
"""Shipped general sets a card may include (`data/samples/safety/<name>.jsonl`)."""
CHECK_SETS = ("children_check",)
"""Shipped sets a guard is only scored on, never trained on (same folder and format)."""
FLAGGED = ("boundary", "disclosure", "self_harm")
"""The categories of a check set that a guard should flag; the rest must be `clear`."""
GENERAL_ID = "persona-guard"
"""The model id of the shipped general guard, trained on every general set."""
MAX_REPLY_CHARS = 4000


class GuardCategory(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One category the guard watches (`[guard.categories.<name>]`)."""

    action: str
    """`steer` (guidance added to this reply) or `reply` (one of `replies`, as written)."""
    replies: list[str] = []
    """Author-written replies in the persona's voice; one is picked per flagged request."""
    guidance: str = ""
    """Steering text added to the conversation for this one reply."""


class GuardCard(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The card's `[guard]` table."""

    policy: str
    """Plain words: what is out of bounds for this persona's audience."""
    categories: dict[str, GuardCategory]
    threshold: float | None = None
    """Flag when P(some category) reaches this; None takes the trained guard's own."""
    check_replies: bool = False
    """Also check each reply; a flagged one is regenerated once with steering, then replaced."""
    include: list[str] = []
    """Shipped general sets trained on with the persona's data (`children`)."""
    fallback_reply: str = ""
    """Used by `check_replies` for a category with no replies of its own."""


def guard_problems(guard: GuardCard | None) -> list[str]:
    """Every problem with a card's `[guard]` table, each naming its dotted path."""
    if guard is None:
        return []
    problems: list[str] = []
    if not guard.policy.strip():
        problems.append("guard.policy: must say in plain words what is out of bounds")
    if not guard.categories:
        problems.append("guard.categories: name at least one category")
    if guard.threshold is not None and not 0.0 < guard.threshold < 1.0:
        problems.append(f"guard.threshold: {guard.threshold} is outside (0, 1)")
    for name in guard.include:
        if name in CHECK_SETS:
            problems.append(
                f"guard.include: {name!r} is a check set, only scored on, never trained on"
            )
        elif name not in GENERAL_SETS:
            problems.append(
                f"guard.include: {name!r} is not a shipped set ({', '.join(GENERAL_SETS)})"
            )
    for name, category in guard.categories.items():
        where = f"guard.categories.{name}"
        if not re.fullmatch(CATEGORY_PATTERN, name) or name == CLEAR:
            problems.append(
                f"{where}: the name must be lowercase letters, digits and '_' (not 'clear')"
            )
        if category.action not in ACTIONS:
            problems.append(f"{where}.action: {category.action!r} is not steer or reply")
        if category.action == "reply" and not category.replies:
            problems.append(f"{where}.replies: a 'reply' category needs at least one reply")
        if category.action == "steer" and not category.guidance.strip():
            problems.append(f"{where}.guidance: a 'steer' category needs guidance text")
        for index, reply in enumerate(category.replies):
            if not reply.strip():
                problems.append(f"{where}.replies[{index}]: is empty")
            elif len(reply) > MAX_REPLY_CHARS:
                problems.append(f"{where}.replies[{index}]: over {MAX_REPLY_CHARS} characters")
    if guard.check_replies and not guard.fallback_reply.strip():
        lacking = [n for n, c in guard.categories.items() if not c.replies]
        if lacking:
            problems.append(
                "guard.fallback_reply: check_replies replaces a reply that stays flagged, so "
                f"give fallback_reply or replies for {', '.join(lacking)}"
            )
    return problems


@dataclass(frozen=True)
class Example:
    """One labelled user turn."""

    text: str
    label: str
    """A guard category, or `clear`."""
    source: str
    """`file:line`, for reports."""
    tag: str = ""
    """The record's first tag (`benign_near`, `boundary`, ...), for per-tag rates."""


def safety_dir() -> Path:
    """The shipped general sets."""
    return Path(__file__).parent / "samples" / "safety"


def label_of(tags: Sequence[str], categories: Sequence[str]) -> str:
    """A record's guard label: the most specific guard category among its tags, else clear.

    Tags run from general to specific (`["disclosure", "self_harm", ...]`), so the last guard
    category named wins.
    """
    found = [t for t in tags if t in categories]
    return found[-1] if found else CLEAR


def record_examples(path: Path, categories: Sequence[str]) -> list[Example]:
    """The last user turn of each chat record of a JSONL file, labelled by its tags.

    Records that do not parse are skipped here; `persona data check` reports them by line.
    """
    examples: list[Example] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            text = last_user_text(record.get("messages"))
            tags = [t for t in record.get("tags") or [] if isinstance(t, str)]
            if text:
                tag = tags[0] if tags else "general"
                examples.append(
                    Example(text, label_of(tags, categories), f"{path.name}:{number}", tag)
                )
    return examples


def last_user_text(messages: object) -> str:
    """The text of the last user message of a chat (empty when there is none)."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


class SafetyLine(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One line of a shipped general set."""

    prompt: str
    category: str


def general_examples(name: str, categories: Sequence[str] | None = None) -> list[Example]:
    """A shipped general set; a category the card does not watch counts as clear.

    Raises ValueError naming `file:line` for a line that is not `{"prompt", "category"}`, and
    for a check set, which no guard may train on.
    """
    if name in CHECK_SETS:
        raise ValueError(f"{name}.jsonl is a check set: guards are scored on it, never trained")
    return prompt_examples(safety_dir() / f"{name}.jsonl", categories)


def check_examples(name: str = CHECK_SETS[0]) -> list[Example]:
    """A shipped check set, every category as written; ValueError naming `file:line` as above."""
    if name not in CHECK_SETS:
        raise ValueError(f"{name!r} is not a check set ({', '.join(CHECK_SETS)})")
    return prompt_examples(safety_dir() / f"{name}.jsonl")


def prompt_examples(path: Path, categories: Sequence[str] | None = None) -> list[Example]:
    """Every `{"prompt", "category"}` line of a file; with `categories`, others count as clear.

    Raises ValueError naming `file:line` for every line that does not fit.
    """
    examples: list[Example] = []
    problems: list[str] = []
    for number, line in _records(path):
        try:
            item = msgspec.json.decode(line, type=SafetyLine)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            problems.append(f"{path.name}:{number}: {exc}")
            continue
        label = item.category
        if categories is not None and label not in categories:
            label = CLEAR
        examples.append(Example(item.prompt, label, f"{path.name}:{number}", item.category))
    if problems:
        raise ValueError("\n".join(problems))
    return examples


def general_categories(names: Sequence[str] = GENERAL_SETS) -> list[str]:
    """Every category the shipped general sets use, in first-seen order."""
    seen: list[str] = []
    for name in names:
        for example in general_examples(name):
            if example.label != CLEAR and example.label not in seen:
                seen.append(example.label)
    return seen


EVAL_FLAGGED = ("boundary", "disclosure")
"""The eval-suite categories a guard should flag (a self-harm probe is tagged `disclosure`)."""


@dataclass(frozen=True)
class ScoredSet:
    """Prompts a guard is scored on, each with its category, and which categories count how."""

    texts: list[str]
    categories: list[str]
    flagged: tuple[str, ...]
    """Categories the guard should flag; every other one should stay clear."""
    care: tuple[str, ...]
    """Flagged categories a card's threshold must catch every one of."""


def scored_set(path: Path) -> ScoredSet:
    """An eval suite or a check set, told apart by its first line.

    Eval suite: the last user turn of each `messages` line (conversation scripts are skipped);
    `boundary` and `disclosure` count as flagged. Check set: `{"prompt", "category"}` lines,
    each category one of `FLAGGED` or `clear`. Raises ValueError naming `file:line`.
    """
    rows: list[tuple[int, object]] = []
    problems: list[str] = []
    for number, line in _records(path):
        try:
            rows.append((number, json.loads(line)))
        except ValueError as exc:
            problems.append(f"{path.name}:{number}: not JSON ({exc})")
    if problems:
        raise ValueError("\n".join(problems))
    first = rows[0][1] if rows else None
    if isinstance(first, dict) and "prompt" in first:
        examples = prompt_examples(path)
        problems = [
            f"{e.source}: category {e.label!r} is not one of {', '.join((*FLAGGED, CLEAR))}"
            for e in examples
            if e.label not in (*FLAGGED, CLEAR)
        ]
        if problems:
            raise ValueError("\n".join(problems))
        texts, categories = [e.text for e in examples], [e.label for e in examples]
        return ScoredSet(texts, categories, FLAGGED, ("disclosure", "self_harm"))
    texts, categories = [], []
    for number, row in rows:
        if not isinstance(row, dict) or "messages" not in row:
            continue
        category = row.get("category")
        if not isinstance(category, str):
            raise ValueError(f"{path.name}:{number}: a probe needs a string 'category'")
        texts.append(last_user_text(row["messages"]))
        categories.append(category)
    return ScoredSet(texts, categories, EVAL_FLAGGED, ("disclosure",))


def _records(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each non-blank record, split where every JSONL reader here splits
    (a U+2028 inside a prompt is text, not a line break). Raises UnicodeDecodeError (a
    ValueError) on bytes that are not UTF-8."""
    records = split_records(path.read_bytes())
    return [(n, chunk.decode("utf-8")) for n, chunk in enumerate(records, 1) if chunk.strip()]
