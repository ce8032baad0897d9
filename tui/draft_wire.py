"""Wire types of the server's draft review routes, as the TUI reads them (msgspec only)."""

from __future__ import annotations

import msgspec


class DraftTurn(msgspec.Struct, frozen=True):
    """One turn of a drafted conversation."""

    role: str
    content: str


class DraftTarget(msgspec.Struct, frozen=True):
    """The gap a draft was asked to fill."""

    words: tuple[int, int]
    tag: str | None = None
    turns: int = 1

    def describe(self) -> str:
        """`40-59 words · boundary · 2 turns`."""
        parts = [f"{self.words[0]}-{self.words[1]} words"]
        if self.tag:
            parts.append(self.tag)
        if self.turns > 1:
            parts.append(f"{self.turns} turns")
        return " · ".join(parts)


class DraftInfo(msgspec.Struct, frozen=True):
    """A draft waiting for review."""

    id: str
    messages: list[DraftTurn]
    target: DraftTarget
    teacher: str = ""
    created: float = 0.0
    tags: list[str] = []


class DraftList(msgspec.Struct, frozen=True):
    """`GET /v1/personas/{id}/drafts`."""

    data: list[DraftInfo]


class DraftReview(msgspec.Struct, frozen=True):
    """What accepting or rejecting a draft did, and the dataset's stats warnings after it."""

    id: str
    status: str
    dataset: str | None = None
    records: int | None = None
    warnings: list[str] = []
