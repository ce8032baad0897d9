"""Read a JSONL file into JSON objects with their line numbers, reporting every bad line.

Records are separated by `\n` alone (a `\r` before it is dropped). U+2028, U+2029, U+0085 and the
other characters `str.splitlines()` breaks on are text inside a JSON string, not line breaks: chat
logs and scraped text carry them raw. Every reader and counter of JSONL here goes through
`split_records`, so line numbers and counts agree everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from .json_depth import NestingError, check_depth
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
    for number, chunk in enumerate(split_records(data), start=1):
        found = _decode(name, number, chunk)
        if isinstance(found, Problem):
            problems.append(found)
        else:
            lines.append(found)
    if not lines and not problems:
        problems.append(error(name, 0, "the file is empty"))
    return lines, problems


def split_records(data: bytes) -> list[bytes]:
    """JSONL lines: split on `\n` only, a trailing `\r` dropped, no final empty line."""
    chunks = data.split(b"\n")
    if chunks and not chunks[-1].strip():
        chunks.pop()  # the newline that ends the last line
    return [chunk.removesuffix(b"\r") for chunk in chunks]


def count_records(path: Path) -> int:
    """How many non-blank lines a JSONL file holds, counted the way `read_json_lines` reads them."""
    return sum(1 for chunk in split_records(path.read_bytes()) if chunk.strip())


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
        check_depth(chunk)
        value = msgspec.json.decode(text)
    except NestingError as exc:
        return error(file, line, str(exc))
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
