"""Wire types of the persona routes: list and read (`/v1/personas`), create and import."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct, field

from data.card import Training
from server.wire.openai import ResolvedSampling


class PersonaCreate(Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /v1/personas`: start a persona from the template, or as a copy of another."""

    name: str
    """The new persona's id (lowercase letters, digits, `-` or `_`)."""
    display_name: str | None = None
    copy_from: str | None = field(default=None, name="from")
    """Copy this persona's card and data instead of the template."""


class PersonaImport(Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /v1/personas/import`: a character card file (V2/V3 JSON, PNG or CHARX)."""

    filename: str
    """The file's name, shown in errors."""
    data: bytes
    """The file's bytes (base64 in JSON)."""
    name: str | None = None
    """The persona's id (default: made from the card's name)."""
    user: str = "User"
    """What `{{user}}` becomes in the card's text."""


class PersonaCreated(Struct, frozen=True):
    """What a create or import made: the persona's id, its folder and notes on the import."""

    id: str
    folder: str
    files: list[str]
    notes: list[str] = []


class PersonaInfo(Struct, frozen=True):
    """`GET /v1/personas/{id}`."""

    id: str
    display_name: str
    description: str
    system_prompt: str
    base_model: str
    defaults: ResolvedSampling
    active_adapter: str | None
    training: Training
    """The card's `[training]`: the defaults of a fine-tuning job for this persona."""
    data_files: list[str]
    """The persona's data on this server (`train.jsonl`, `valid.jsonl`, `eval.jsonl`)."""
    greetings: list[str] = []
    """Opening lines a new chat may start with (a character card's first_mes and alternates)."""
    post_history_instructions: str = ""
    error: str | None = None
    """Why the card on disk does not parse; the version described here keeps serving."""

    @property
    def title(self) -> str:
        """The name to show people."""
        return self.display_name or self.id


class PersonaList(Struct, frozen=True):
    """`GET /v1/personas`."""

    data: list[PersonaInfo]
    object: Literal["list"] = "list"
