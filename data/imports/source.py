"""Read the entries of a source file: JSONL, a JSON array, or one JSON object, with line numbers.

Line numbers count `\n` only, as every JSONL reader here does (see `data.jsonl`). The entries of
a JSON array are located by where each one starts, so a bad entry is reported at its own line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..json_depth import NestingError, check_depth
from ..jsonl import BOM, JsonLine, read_json_lines
from ..problem import Problem, error


def read_entries(path: Path) -> tuple[list[JsonLine], list[Problem]]:
    """Every JSON object in the file, and a problem for everything that is not one."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [error(name, 0, f"cannot read: {exc.strerror}")]
    start = data.removeprefix(BOM).lstrip()
    if start.startswith((b"[", b"{")):
        try:
            check_depth(data)
        except NestingError as exc:
            return [], [error(name, 0, str(exc))]
    if start.startswith(b"["):
        return _array(name, data)
    entries, problems = read_json_lines(path)
    if problems and start.startswith(b"{"):
        # A pretty-printed object spans many lines; read it whole before calling it broken.
        try:
            value = json.loads(data.removeprefix(BOM).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return entries, problems
        if isinstance(value, dict):
            return [JsonLine(_first_line(data), "", value)], []
    return entries, problems


def _array(name: str, data: bytes) -> tuple[list[JsonLine], list[Problem]]:
    try:
        text = data.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [error(name, _line(data, exc.start), f"not valid UTF-8: {exc.reason}")]
    decoder = json.JSONDecoder()
    entries: list[JsonLine] = []
    problems: list[Problem] = []
    index = _skip(text, text.index("[") + 1)
    while index < len(text) and text[index] != "]":
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError as exc:
            where = _line_of(text, exc.pos)
            problems.append(
                error(name, where, f"not valid JSON: {exc.msg}; the rest of the array is not read")
            )
            return entries, problems
        line = _line_of(text, index)
        if isinstance(value, dict):
            entries.append(JsonLine(line, text[index:end], value))
        else:
            problems.append(error(name, line, f"expected a JSON object, got {_kind(value)}"))
        index = _skip(text, end)
        if index < len(text) and text[index] == ",":
            index = _skip(text, index + 1)
        elif index < len(text) and text[index] != "]":
            problems.append(error(name, _line_of(text, index), "expected ',' or ']' in the array"))
            return entries, problems
    if index >= len(text):
        problems.append(error(name, _line_of(text, len(text)), "the array is not closed"))
    return entries, problems


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _line(data: bytes, index: int) -> int:
    return data.count(b"\n", 0, index) + 1


def _first_line(data: bytes) -> int:
    stripped = data.removeprefix(BOM)
    return _line(stripped, len(stripped) - len(stripped.lstrip()))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")
