"""Turn a character card into a persona: card, greetings and seed examples, macros resolved.

The system prompt is composed in this order, parts joined by a blank line, empty parts left out:

1. the card's `system_prompt`, else `You are {{char}}.` (an `{{original}}` inside the card's
   `system_prompt` stands for that default line);
2. `description`;
3. `{{char}}'s personality: ` + `personality`;
4. `Scenario: ` + `scenario`.

`creator_notes` never enter a prompt. `{{char}}` is the V3 `nickname` when set, else `name`;
`{{user}}` is the name given for the user. Each `<START>` block of `mes_example` becomes one
training record tagged `example`.
"""

from __future__ import annotations

import re

import msgspec

from ..card import NAME_PATTERN, PersonaCard, validate
from ..records import ChatRecord, Message, merge_turns
from .spec import Card, CardError

DEFAULT_HEAD = "You are {{char}}."
EXAMPLE_TAG = "example"
DEFAULT_USER = "User"

_MACRO = re.compile(r"\{\{\s*(char|user|original)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)
_START = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)


class Imported(msgspec.Struct, frozen=True):
    """A persona made from a card, and what the conversion noticed."""

    card: PersonaCard
    records: tuple[ChatRecord, ...]
    notes: tuple[str, ...]


def char_name(card: Card) -> str:
    """What `{{char}}` stands for: the V3 nickname when set, else the name."""
    return (card.data.nickname or "").strip() or card.data.name.strip()


def resolve(text: str, char: str, user: str, original: str = "") -> str:
    """Replace `{{char}}`, `{{user}}` (any case), `<BOT>`, `<USER>` and `{{original}}`."""

    def swap(match: re.Match[str]) -> str:
        word = (match.group(1) or match.group(2)).casefold()
        return {"char": char, "bot": char, "user": user}.get(word, original)

    return _MACRO.sub(swap, text)


def system_prompt(card: Card, user: str = DEFAULT_USER) -> str:
    """The persona's system prompt, composed in the documented order."""
    char = char_name(card)
    data = card.data
    head_default = resolve(DEFAULT_HEAD, char, user)
    head = (
        resolve(data.system_prompt, char, user, head_default)
        if data.system_prompt.strip()
        else head_default
    )
    parts = [
        head,
        resolve(data.description, char, user),
        f"{char}'s personality: {resolve(data.personality, char, user)}"
        if data.personality.strip()
        else "",
        f"Scenario: {resolve(data.scenario, char, user)}" if data.scenario.strip() else "",
    ]
    return "\n\n".join(p.strip() for p in parts if p.strip())


def slug(name: str) -> str:
    """A persona name (model id) made from a character's name: `Mira Quell` -> `mira-quell`."""
    text = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-_")
    return text[:63].rstrip("-_")


def to_persona(card: Card, name: str | None = None, user: str = DEFAULT_USER) -> Imported:
    """The persona for a card; raise CardError when no valid persona name can be made."""
    chosen = name or slug(card.data.name)
    if not NAME_PATTERN.fullmatch(chosen):
        where = "--name" if name else "data.name"
        raise CardError(
            f"{where}: {chosen or card.data.name!r} does not make a persona name "
            "(lowercase letters, digits, '-' or '_'); pass --name"
        )
    char = char_name(card)
    data = card.data
    greetings = [
        resolve(g, char, user).strip() for g in (data.first_mes, *data.alternate_greetings)
    ]
    records, notes = examples(data.mes_example, char, user)
    persona = PersonaCard(
        name=chosen,
        display_name=data.name.strip(),
        description=_summary(resolve(data.description, char, user)),
        system_prompt=system_prompt(card, user),
        greetings=[g for g in greetings if g],
        post_history_instructions=resolve(data.post_history_instructions, char, user).strip(),
    )
    problems = validate(persona)
    if problems:
        raise CardError("; ".join(problems))
    return Imported(persona, tuple(records), tuple(notes))


def examples(mes_example: str, char: str, user: str) -> tuple[list[ChatRecord], list[str]]:
    """One record per `<START>` block; a note for every turn that could not be kept."""
    records: list[ChatRecord] = []
    notes: list[str] = []
    blocks = [b for b in _START.split(mes_example) if b.strip()]
    for number, block in enumerate(blocks, start=1):
        turns = _turns(block, char, user)
        messages, _ = merge_turns(turns)
        while messages and messages[0].role != "user":
            notes.append(f"mes_example block {number}: a reply before any user turn is left out")
            messages.pop(0)
        if messages and messages[-1].role != "assistant":
            notes.append(f"mes_example block {number}: a user turn with no reply is left out")
            messages.pop()
        if not messages:
            notes.append(f"mes_example block {number}: no {user}/{char} exchange found")
            continue
        records.append(ChatRecord(tuple(messages), (EXAMPLE_TAG,)))
    return records, notes


def _turns(block: str, char: str, user: str) -> list[Message]:
    """`{{user}}: ...` / `{{char}}: ...` lines (or the resolved names) as turns."""
    speakers = {
        "user": ("{{user}}:", "<user>:", f"{user.casefold()}:"),
        "assistant": ("{{char}}:", "<bot>:", f"{char.casefold()}:"),
    }
    turns: list[tuple[str, list[str]]] = []
    for line in block.split("\n"):
        lowered = line.strip().casefold()
        role = next((r for r, marks in speakers.items() if lowered.startswith(marks)), None)
        if role is not None:
            text = line.strip().split(":", 1)[1]
            turns.append((role, [text]))
        elif turns:
            turns[-1][1].append(line)
    result = []
    for role, lines in turns:
        text = resolve("\n".join(lines), char, user).strip()
        if text:
            result.append(Message(role, text))
    return result


def _summary(description: str) -> str:
    """The first paragraph of a description, cut at 200 characters, for lists."""
    first = description.strip().split("\n\n", 1)[0].strip()
    return first if len(first) <= 200 else first[:199].rsplit(" ", 1)[0] + "…"
