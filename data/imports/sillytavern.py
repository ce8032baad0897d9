"""SillyTavern chat files: a header line, then one message per line, as one long conversation.

The header names the user (`user_name`) and the character (`character_name`). A message has
`name`, `is_user` and `mes`; where it has `swipes`, `swipe_id` picks the text that was kept.
Hidden messages (`is_system`) are left out with a warning, a message from another character is
an error at its line, and the chat is cut into records of at most `max_turns` user turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..jsonl import JsonLine
from ..problem import Problem, error, warning
from ..records import Message
from .formats import Converted, EntryError, Names, finish, text_of


def read_chat(
    entries: Sequence[JsonLine], file: str, names: Names, max_turns: int
) -> tuple[list[Converted], list[Problem]]:
    """One SillyTavern chat: its messages in windows of at most `max_turns` exchanges."""
    problems: list[Problem] = []
    character = ""
    turns: list[tuple[int, Message]] = []
    for entry in entries:
        value = entry.value
        if "mes" not in value:
            if "user_name" in value or "character_name" in value or "chat_metadata" in value:
                character = str(value.get("character_name") or "")
                continue
            problems.append(error(file, entry.line, "sillytavern: a message needs 'mes'"))
            continue
        try:
            message = _st_message(value, character, names)
        except EntryError as exc:
            problems.append(error(file, entry.line, f"sillytavern: {exc}"))
            continue
        if message is None:
            problems.append(warning(file, entry.line, "a hidden (is_system) message is left out"))
            continue
        turns.append((entry.line, message))
    found: list[Converted] = []
    for window in _windows(turns, max_turns):
        line = window[0][0]
        converted, notes = finish([m for _, m in window], line)
        problems += [warning(file, line, note) for note in notes]
        if converted is not None:
            found.append(converted)
    return found, problems


def _st_message(value: dict[str, Any], character: str, names: Names) -> Message | None:
    if value.get("is_system") is True:
        return None
    text = text_of(value["mes"], "mes")
    swipes = value.get("swipes")
    if isinstance(swipes, list) and swipes:
        chosen = value.get("swipe_id", 0)
        if not isinstance(chosen, int) or not 0 <= chosen < len(swipes):
            raise EntryError(f"swipe_id: {chosen!r} is not an index into {len(swipes)} swipes")
        text = text_of(swipes[chosen], f"swipes[{chosen}]")
    if value.get("is_user") is True:
        return Message("user", text)
    speaker = str(value.get("name") or "").casefold()
    known = {character.casefold(), *(n.casefold() for n in names.char)} - {""}
    if known and speaker and speaker not in known:
        raise EntryError(f"a message from {value.get('name')!r}, not the chat's character")
    return Message("assistant", text)


def _windows(turns: list[tuple[int, Message]], max_turns: int) -> list[list[tuple[int, Message]]]:
    """Cut a long chat before every `max_turns`-th user turn that follows a reply."""
    windows: list[list[tuple[int, Message]]] = [[]]
    users = 0
    for index, (line, message) in enumerate(turns):
        starts_exchange = message.role == "user" and (
            index == 0 or turns[index - 1][1].role == "assistant"
        )
        if starts_exchange:
            if users == max_turns:
                windows.append([])
                users = 0
            users += 1
        windows[-1].append((line, message))
    return [w for w in windows if w]
