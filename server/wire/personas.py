"""Wire types of the routes that create personas: `POST /v1/personas` and its `/import`."""

from __future__ import annotations

from msgspec import Struct, field


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
