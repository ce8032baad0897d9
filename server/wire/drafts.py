"""Wire types of the draft review routes (`/v1/personas/{id}/drafts`)."""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, Struct, UnsetType

from data.authoring.drafts.gaps import DraftTarget


class DraftTurn(Struct, frozen=True):
    """One turn of a drafted conversation."""

    role: str
    content: str


class DraftInfo(Struct, frozen=True):
    """A draft waiting for review."""

    id: str
    messages: list[DraftTurn]
    target: DraftTarget
    teacher: str
    created: float
    tags: list[str] = []


class DraftList(Struct, frozen=True):
    """`GET /v1/personas/{id}/drafts`."""

    data: list[DraftInfo]
    object: Literal["list"] = "list"


class DraftEdit(Struct, frozen=True):
    """`PUT /v1/personas/{id}/drafts/{draft_id}`: the conversation (and tags) as edited."""

    messages: list[DraftTurn]
    tags: list[str] | UnsetType = UNSET


class DraftKeep(Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /v1/personas/{id}/drafts`: a conversation from a chat to review as training data."""

    messages: list[DraftTurn]
    tags: list[str] = []
    source: str = "chat"
    """Where it came from (the model id that wrote the replies), shown as the draft's teacher."""


class DraftReview(Struct, frozen=True):
    """The outcome of accepting or rejecting a draft, with the dataset's stats after it."""

    id: str
    status: Literal["accepted", "rejected"]
    dataset: str | None = None
    """The file an accepted draft was appended to (its name in the persona folder)."""
    records: int | None = None
    """Records in that file afterwards."""
    warnings: list[str] = []
    """What `persona data stats` warns about afterwards."""
