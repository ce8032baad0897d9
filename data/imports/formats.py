"""Chat logs and datasets in other formats, converted into conversations of this project.

- **openai**: `{"messages": [{role, content}], "tags"?}` (also `developer` for system) and
  `{"prompt", "completion"}`;
- **sharegpt**: `{"conversations": [{from, value}]}` with `from` = human/user, gpt/assistant or
  system; in roleplay logs, the character's and the user's names instead;
- **alpaca**: `{instruction, input?, output, system?, history?: [[instruction, output], ...]}`;
- **sillytavern**: a chat file (see `sillytavern.py`).

Consecutive turns of one role are merged, joined by a blank line as the server joins leading
system turns. A turn that cannot be kept (a reply before any user turn, a last user turn with
no reply, a hidden SillyTavern message) is reported at its line, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ..jsonl import JsonLine
from ..records import Message, merge_turns

FORMATS = ("openai", "sharegpt", "alpaca", "sillytavern")

USER_SPEAKERS = frozenset({"human", "user", "you"})
ASSISTANT_SPEAKERS = frozenset({"gpt", "assistant", "model", "bot", "chatgpt", "character"})
SYSTEM_SPEAKERS = frozenset({"system", "developer"})


class Converted(msgspec.Struct, frozen=True):
    """One conversation from the source, with the line it starts at."""

    line: int
    messages: tuple[Message, ...]
    tags: tuple[str, ...] = ()
    merged: int = 0
    """Turns merged into the one before them (same role twice in a row)."""


class Names(msgspec.Struct, frozen=True):
    """Speaker names that stand for the persona and for the user in roleplay logs."""

    char: tuple[str, ...] = ()
    user: tuple[str, ...] = ()


class EntryError(Exception):
    """An entry that is not a conversation of the format being read."""


def detect(entries: Sequence[JsonLine]) -> str | None:
    """The format of a file, judged by its first entry that looks like one; None if none does."""
    for entry in entries[:20]:
        value = entry.value
        if "chat_metadata" in value or {"user_name", "character_name"} <= value.keys():
            return "sillytavern"
        if "is_user" in value and "mes" in value:
            return "sillytavern"
        if "conversations" in value:
            return "sharegpt"
        if "instruction" in value and "output" in value:
            return "alpaca"
        if "messages" in value or ("prompt" in value and "completion" in value):
            return "openai"
    return None


def finish(
    turns: Sequence[Message], line: int, tags: tuple[str, ...] = ()
) -> tuple[Converted | None, list[str]]:
    """Merge same-role turns and trim what cannot start or end a record, saying what went."""
    notes: list[str] = []
    system = [m for m in turns[:1] if m.role == "system"]
    rest = list(turns[len(system) :])
    merged_rest, merged = merge_turns(rest)
    if any(m.role == "system" for m in merged_rest):
        notes.append("a system turn after the start is kept as a user turn")
        merged_rest, more = merge_turns(
            [Message("user", m.content) if m.role == "system" else m for m in merged_rest]
        )
        merged += more
    while merged_rest and merged_rest[0].role != "user":
        notes.append("a reply before the first user turn is left out")
        merged_rest.pop(0)
    if merged_rest and merged_rest[-1].role != "assistant":
        notes.append("the last user turn has no reply and is left out")
        merged_rest.pop()
    if not merged_rest:
        return None, notes
    return Converted(line, (*system, *merged_rest), tags, merged), notes


def text_of(value: Any, where: str) -> str:
    if value is None:
        raise EntryError(f"{where}: missing")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in value
    ):
        return "".join(p["text"] for p in value)
    raise EntryError(f"{where}: expected text, got {type(value).__name__}")


def _tags(value: dict[str, Any]) -> tuple[str, ...]:
    tags = value.get("tags")
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        return tuple(tags)
    return ()


def _openai(value: dict[str, Any], names: Names) -> tuple[list[Message], tuple[str, ...]]:
    if "messages" not in value:
        if isinstance(value.get("prompt"), str) and isinstance(value.get("completion"), str):
            turns = [Message("user", value["prompt"]), Message("assistant", value["completion"])]
            return turns, _tags(value)
        raise EntryError("expected 'messages', or 'prompt' and 'completion'")
    messages = value["messages"]
    if not isinstance(messages, list):
        raise EntryError("messages: expected an array")
    turns: list[Message] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise EntryError(f"messages[{index}]: expected an object")
        role = message.get("role")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant"):
            raise EntryError(f"messages[{index}].role: {role!r} is not system, user or assistant")
        turns.append(Message(role, text_of(message.get("content"), f"messages[{index}].content")))
    return turns, _tags(value)


def _sharegpt(value: dict[str, Any], names: Names) -> tuple[list[Message], tuple[str, ...]]:
    conversation = value.get("conversations")
    if not isinstance(conversation, list):
        raise EntryError("conversations: expected an array")
    char = {n.casefold() for n in names.char}
    user = {n.casefold() for n in names.user}
    speakers: list[str] = []
    texts: list[str] = []
    for index, turn in enumerate(conversation):
        if not isinstance(turn, dict):
            raise EntryError(f"conversations[{index}]: expected an object")
        speaker = turn.get("from", turn.get("role"))
        if not isinstance(speaker, str):
            raise EntryError(f"conversations[{index}].from: expected a speaker name")
        speakers.append(speaker.strip().casefold())
        texts.append(
            text_of(turn.get("value", turn.get("content")), f"conversations[{index}].value")
        )
    roles = _roles(speakers, char, user)
    return [Message(r, t) for r, t in zip(roles, texts, strict=True)], _tags(value)


def _roles(speakers: list[str], char: set[str], user: set[str]) -> list[str]:
    """Standard speakers by name; in roleplay logs the character's name is the assistant."""
    roles: list[str] = []
    others = {
        s
        for s in speakers
        if s not in USER_SPEAKERS | ASSISTANT_SPEAKERS | SYSTEM_SPEAKERS | char | user
    }
    named_char = any(s in char for s in speakers)
    named_user = any(s in user for s in speakers)
    if len(others) > 1 or (others and named_char and named_user):
        listed = ", ".join(sorted(others))
        raise EntryError(
            f"speakers {listed} are neither the persona nor the user; "
            "pass --char NAME or --user NAME"
        )
    for speaker in speakers:
        if speaker in SYSTEM_SPEAKERS:
            roles.append("system")
        elif speaker in USER_SPEAKERS or speaker in user:
            roles.append("user")
        elif speaker in ASSISTANT_SPEAKERS or speaker in char:
            roles.append("assistant")
        elif named_char:
            roles.append("user")  # the one other speaker talks to the character
        elif named_user:
            roles.append("assistant")
        else:
            raise EntryError(
                f"speaker {speaker!r} is neither the persona nor the user; "
                "pass --char NAME or --user NAME"
            )
    return roles


def _alpaca(value: dict[str, Any], names: Names) -> tuple[list[Message], tuple[str, ...]]:
    for key in ("instruction", "output"):
        if not isinstance(value.get(key), str):
            raise EntryError(f"{key}: expected text")
    turns: list[Message] = []
    if isinstance(value.get("system"), str) and value["system"].strip():
        turns.append(Message("system", value["system"]))
    history = value.get("history") or []
    if not isinstance(history, list):
        raise EntryError("history: expected an array of [instruction, output] pairs")
    for index, pair in enumerate(history):
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise EntryError(f"history[{index}]: expected [instruction, output]")
        turns += [Message("user", pair[0]), Message("assistant", pair[1])]
    extra = value.get("input")
    if extra is not None and not isinstance(extra, str):
        raise EntryError("input: expected text")
    prompt = value["instruction"] + (f"\n\n{extra}" if extra and extra.strip() else "")
    turns += [Message("user", prompt), Message("assistant", value["output"])]
    return turns, _tags(value)


READERS = {"openai": _openai, "sharegpt": _sharegpt, "alpaca": _alpaca}
"""The one-entry-per-conversation formats, by name (SillyTavern logs are read as a whole)."""
