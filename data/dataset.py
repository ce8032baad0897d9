"""Read JSONL datasets into records, keeping line numbers and collecting every problem.

A line that cannot be decoded is reported and left out of the rows; nothing is dropped without a
problem saying so. Unknown keys are kept in the raw line (so a split writes them back) and
reported as warnings, because a typo such as `"tag"` for `"tags"` would otherwise vanish.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec

from .jsonl import JsonLine, read_json_lines, unknown_keys
from .problem import Problem, error, friendly_validation
from .records import (
    CHAT_KEYS,
    COMPLETION_KEYS,
    MESSAGE_KEYS,
    PREFERENCE_INPUT_KEYS,
    PREFERENCE_KEYS,
    ChatRecord,
    CompletionRecord,
    PreferenceRecord,
    Record,
)


class Row(msgspec.Struct, frozen=True):
    """A decoded record and where it came from."""

    file: str
    line: int
    record: Record
    raw: str
    """The line as written, so a split copies records byte for byte."""

    @property
    def where(self) -> str:
        """`file:line`, for messages."""
        return f"{self.file}:{self.line}"


class Loaded(msgspec.Struct, frozen=True):
    """The rows read from one or more files and the problems found while reading."""

    rows: tuple[Row, ...]
    problems: tuple[Problem, ...]


def read_dataset(path: Path) -> Loaded:
    """Decode every line of a JSONL file into records, collecting problems as file:line."""
    lines, problems = read_json_lines(path)
    rows: list[Row] = []
    for item in lines:
        row, found = to_row(str(path), item)
        problems.extend(found)
        if row is not None:
            rows.append(row)
    return Loaded(tuple(rows), tuple(problems))


def read_datasets(paths: Iterable[Path]) -> Loaded:
    """Read several JSONL files as one dataset."""
    rows: list[Row] = []
    problems: list[Problem] = []
    for path in paths:
        loaded = read_dataset(path)
        rows.extend(loaded.rows)
        problems.extend(loaded.problems)
    return Loaded(tuple(rows), tuple(problems))


def to_row(file: str, item: JsonLine) -> tuple[Row | None, list[Problem]]:
    """Convert one JSON object into a record, or say why it cannot be one."""
    obj, line = item.value, item.line
    record_type: type[ChatRecord] | type[CompletionRecord] | type[PreferenceRecord]
    if "messages" in obj:
        record_type, known = ChatRecord, CHAT_KEYS
    elif "input" in obj or "preferred_output" in obj or "non_preferred_output" in obj:
        record_type, known = PreferenceRecord, PREFERENCE_KEYS
    elif "prompt" in obj or "completion" in obj:
        record_type, known = CompletionRecord, COMPLETION_KEYS
    else:
        keys = ", ".join(repr(k) for k in obj) or "none"
        message = (
            "a record needs 'messages', 'prompt' and 'completion', or 'input', "
            f"'preferred_output' and 'non_preferred_output'; found keys: {keys}"
        )
        return None, [error(file, line, message)]
    problems = unknown_keys(file, line, obj, known)
    problems += _message_keys(file, line, obj.get("messages"), "messages")
    given = obj.get("input")
    if isinstance(given, dict):
        problems += unknown_keys(file, line, given, PREFERENCE_INPUT_KEYS, "input")
        problems += _message_keys(file, line, given.get("messages"), "input.messages")
    for key in ("preferred_output", "non_preferred_output"):
        problems += _message_keys(file, line, obj.get(key), key)
    try:
        record = msgspec.convert(obj, record_type)
    except msgspec.ValidationError as exc:
        problems.append(error(file, line, friendly_validation(str(exc))))
        return None, problems
    return Row(file, line, record, item.text), problems


def _message_keys(file: str, line: int, messages: object, where: str) -> list[Problem]:
    if not isinstance(messages, list):
        return []
    problems: list[Problem] = []
    for index, message in enumerate(messages):
        if isinstance(message, dict):
            problems += unknown_keys(file, line, message, MESSAGE_KEYS, f"{where}[{index}]")
    return problems
