"""One reported problem in a file, located by line, shared by every data check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

Severity = Literal["error", "warning"]

MAX_LISTED = 50
"""Reports list this many problems, then count the rest: a file of 50,000 bad lines must not
make a 4 MB error body or fill the terminal."""
MAX_PROBLEM_CHARS = 240
"""No single problem's message is longer (they may quote the offending text)."""


class Problem(msgspec.Struct, frozen=True, order=True):
    """A problem at `file:line`; line 0 means the file as a whole."""

    file: str
    line: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        label = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}: {label}{self.message}"


def error(file: str, line: int, message: str) -> Problem:
    """An error: the data cannot be used as it is."""
    return Problem(file, line, "error", clip(message, MAX_PROBLEM_CHARS))


def warning(file: str, line: int, message: str) -> Problem:
    """A warning: the data can be used, but probably not as intended."""
    return Problem(file, line, "warning", clip(message, MAX_PROBLEM_CHARS))


def listed(items: Sequence[object], limit: int = MAX_LISTED) -> list[str]:
    """The first `limit` items as text (each cut to MAX_PROBLEM_CHARS), then a line counting
    the rest; the one way every report shows a list of problems."""
    shown = [clip(str(item), MAX_PROBLEM_CHARS) for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"... and {len(items) - limit} more (the first {limit} are shown)")
    return shown


def friendly_validation(message: str) -> str:
    """Rewrite "Expected `str`, got `int` - at `$.a[0].b`" as "a[0].b: expected str, got int"."""
    text, _, where = message.partition(" - at `$")
    where = where.rstrip("`").lstrip(".")
    text = text.replace("`", "")
    if text.startswith("Object missing required field "):
        text = "missing required key " + repr(text.removeprefix("Object missing required field "))
    text = text[:1].lower() + text[1:]
    return f"{where}: {text}" if where else text


QUOTE_CHARS = 80
"""How much of an offending value a message quotes."""


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """`repr(text)`, cut to `limit` characters and the full length noted when longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def clip(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` as it is, cut to `limit` characters and the full length noted when longer."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
