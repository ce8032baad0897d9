"""Wire types of the server's draft review routes, as the TUI reads them (msgspec only)."""

from __future__ import annotations

import msgspec

from data.drafts.target import Target as DraftTarget


class DraftTurn(msgspec.Struct, frozen=True):
    """One turn of a drafted conversation."""

    role: str
    content: str


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
