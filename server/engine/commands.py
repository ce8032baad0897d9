"""The commands the engine's thread takes from its queue, applied between decode steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.engine.row import Handle
from server.engine.types import AdapterRef, ScoreRequest

Reply = Callable[[Any], None]
"""Receives a command's result, or the exception it raised; safe to call from any thread."""


@dataclass(frozen=True)
class Submit:
    """A new sequence to run."""

    handle: Handle


@dataclass(frozen=True)
class Cancel:
    """Stop a sequence and free its row."""

    handle_id: int


@dataclass(frozen=True)
class LoadAdapter:
    """Validate an adapter and write it into a slot."""

    ref: AdapterRef
    reply: Reply


@dataclass(frozen=True)
class UnloadAdapter:
    """Free an adapter's slot once no row uses it."""

    key: str
    reply: Reply


@dataclass(frozen=True)
class Score:
    """Teacher-force a token sequence between decode steps; reply with its token logprobs."""

    request: ScoreRequest
    reply: Reply


@dataclass(frozen=True)
class Features:
    """Pooled base-model hidden states of short prompts, for the guard (no adapter, no cache)."""

    prompts: tuple[tuple[int, ...], ...]
    spans: tuple[tuple[int, int], ...]
    """Per prompt, the token range mean pooling averages."""
    reads: tuple[tuple[int, str], ...]
    """(block, pooling) states joined side by side, in order."""
    reply: Reply
    """Receives a (prompts, hidden * reads) float32 NumPy array."""


@dataclass(frozen=True)
class Shutdown:
    """Fail everything still running and end the loop."""

    reply: Reply


Command = Submit | Cancel | LoadAdapter | UnloadAdapter | Score | Features | Shutdown
