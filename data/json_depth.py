"""A fixed limit on how deeply untrusted JSON may nest, checked before any decoder recurses.

msgspec and `json` recurse once per level and raise `RecursionError` near Python's stack limit,
which depends on how deep the caller already is. A 2 KB body of `[[[[...` would otherwise crash
whatever reads it, so every reader of untrusted JSON checks the depth first against one fixed
number it can name in its error.
"""

from __future__ import annotations

import re
from itertools import accumulate

MAX_DEPTH = 100
"""The deepest nesting of arrays and objects accepted anywhere untrusted JSON is read."""

# A whole string literal, so brackets inside text are not counted. An unterminated one runs to the
# end: the decoder reports it.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Opening brackets become +1 and closing ones -1 (0xff as a signed byte).
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class NestingError(ValueError):
    """JSON nested deeper than the limit."""


def nesting_message(limit: int = MAX_DEPTH) -> str:
    """The one wording every reader uses for JSON nested too deeply."""
    return f"JSON is nested deeper than {limit} levels of arrays and objects (the limit)"


def check_depth(raw: bytes | str, limit: int = MAX_DEPTH) -> None:
    """Raise NestingError if `raw` (JSON text, valid or not) opens more than `limit` levels."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return  # cannot be deeper than the brackets it holds; skips the work for most bodies
    # Running sums over the brackets alone, at C speed: a Python loop over a few MB of brackets
    # would hold the event loop for a second.
    steps = _STRING.sub(b"", data).translate(_STEPS, _NOT_BRACKETS)
    if steps and max(accumulate(memoryview(steps).cast("b"))) > limit:
        raise NestingError(nesting_message(limit))
