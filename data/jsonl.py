"""Read a JSONL file into JSON objects with their line numbers, reporting every bad line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from .problem import Problem, error, warning

BOM = b"\xef\xbb\xbf"


class JsonLine(msgspec.Struct, frozen=True):
    """One decoded JSON object and where it was."""

    line: int
    text: str
    value: dict[str, Any]


def read_json_lines(path: Path) -> tuple[list[JsonLine], list[Problem]]:
    """Every JSON object in a JSONL file, and a problem for each line that is not one."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [error(name, 0, f"cannot read: {exc.strerror}")]
    lines: list[JsonLine] = []
    problems: list[Problem] = []
    if data.startswith(BOM):
        problems.append(
            error(
                name, 1, "the file starts with a UTF-8 byte-order mark (BOM); save it without one"
            )
        )
        data = data[len(BOM) :]
    chunks = data.split(b"\n")
    if chunks and not chunks[-1].strip():
        chunks.pop()  # the newline that ends the last line
    for number, chunk in enumerate(chunks, start=1):
        found = _decode(name, number, chunk.removesuffix(b"\r"))
        if isinstance(found, Problem):
            problems.append(found)
        else:
            lines.append(found)
    if not lines and not problems:
        problems.append(error(name, 0, "the file is empty"))
    return lines, problems


def _decode(file: str, line: int, chunk: bytes) -> JsonLine | Problem:
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        return error(file, line, f"not valid UTF-8 (byte {exc.start}): {exc.reason}")
    if not text.strip():
        return warning(file, line, "blank line is skipped")
    if text.startswith("\ufeff"):
        return error(file, line, "a byte-order mark (BOM) in the middle of the file")
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        return error(file, line, f"not valid JSON: {exc}")
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")
        return error(
            file, line, "expected a JSON object, got " + ("null" if value is None else kind)
        )
    return JsonLine(line, text, value)


def unknown_keys(
    file: str, line: int, value: dict[str, Any], known: frozenset[str], where: str = ""
) -> list[Problem]:
    """A warning for each key a record does not use, so a typo never vanishes silently."""
    prefix = f"{where}: " if where else ""
    return [
        warning(file, line, f"{prefix}unknown key {key!r} is ignored")
        for key in value
        if key not in known
    ]
