"""What every piece of one reply shares, whichever route wrote it: its id, time and model.

Chat and text completions put these on the whole object and on every streamed chunk alike;
`Head.build` fills them into any of those wire types.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from msgspec import UNSET

T = TypeVar("T")


@dataclass(frozen=True)
class Head:
    """The shared part of one completion: id, creation time, model id and base fingerprint."""

    reply_id: str
    created: int
    """Unix seconds."""
    model: str
    """The model id as the client sent it."""
    base_hash: str
    """The base model's fingerprint, used when no adapter answered."""
    guard: Any = UNSET
    """The guard's `PersonaGuard` decision, or UNSET for a model without a guard."""

    @classmethod
    def new(cls, prefix: str, model: str, base_hash: str) -> Head:
        """A fresh head: `prefix-<hex>` for the id (`chatcmpl`, `cmpl`), created now."""
        return cls(f"{prefix}-{uuid.uuid4().hex}", int(time.time()), model, base_hash)

    def fingerprint(self, version: str | None) -> str:
        """`system_fingerprint`: the adapter version that answered, else the base model's."""
        return version or self.base_hash

    def build(
        self, kind: Callable[..., T], choices: list[Any], version: str | None, usage: Any = UNSET
    ) -> T:
        """A `kind` (`ChatCompletion`, `ChatCompletionChunk` or `Completion`) with this head's
        fields, its `choices`, the adapter `version` that answered (None: the base model) and
        `usage` (left out of a chunk while UNSET)."""
        return kind(
            id=self.reply_id,
            created=self.created,
            model=self.model,
            choices=choices,
            system_fingerprint=self.fingerprint(version),
            persona_adapter=version,
            usage=usage,
            persona_guard=self.guard,
        )
