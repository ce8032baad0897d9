r"""The one grammar for names and numbers that come from outside and reach file paths or ids.

Persona, run and LoRA names, checkpoint steps, and the numbers inside model ids are matched
whole (`re.fullmatch`: a `^...$` pattern with `re.match` lets a trailing newline through) and in
ASCII only (`str.isdigit()` accepts `²`, which `int()` then refuses; `\d` accepts Arabic-Indic
digits). Numbers are bounded, so `int()` never meets 5,000 digits.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""A persona, run or LoRA name: lowercase ASCII letters, digits, `-` and `_`, at most 63."""
NUMBER = re.compile(r"[0-9]{1,9}")
"""A step or other count written in a name or id: 1 to 9 ASCII digits."""
RUN = re.compile(r"run-([0-9]{1,9})(?:-[a-z0-9_-]+)?")
"""A run named by the trainer: `run-` and its number, then `-<label>` when a fine-tuning job's
`suffix` labels it."""


def is_name(text: str) -> bool:
    """Whether the whole of `text` is a valid persona, run or LoRA name."""
    return NAME.fullmatch(text) is not None


def parse_number(text: str) -> int | None:
    """`text` as an int if it is 1 to 9 ASCII digits and nothing else, else None."""
    return int(text) if NUMBER.fullmatch(text) else None


def run_number(name: str) -> int | None:
    """The number of a trainer-made run name (`run-12`, `run-12-grumpy` -> 12), else None."""
    match = RUN.fullmatch(name)
    return int(match.group(1)) if match else None
