"""The character card spec as msgspec Structs, with the spec's own field names.

Character Card V2 (`spec: "chara_card_v2"`) and V3 (`spec: "chara_card_v3"`) share one `data`
object; V3 adds a few fields. Every V2 field is read from `data.*` for both versions. The Structs
check types and name the bad field; the decoded JSON object is kept beside them, so a lorebook,
unknown `extensions` and any field this code does not know are written back out unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ..json_depth import NestingError, check_depth

V2 = "chara_card_v2"
V3 = "chara_card_v3"
SPEC_VERSIONS = {V2: "2.0", V3: "3.0"}


class CardError(Exception):
    """A file that cannot be read as a character card; the message names the field."""


class Asset(msgspec.Struct, frozen=True):
    """A V3 asset: `{type, uri, name, ext}`."""

    type: str
    uri: str
    name: str = ""
    ext: str = ""


class CardData(msgspec.Struct, frozen=True):
    """The `data` object of a V2 or V3 card (V3-only fields are optional here)."""

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: list[str] = []
    character_book: dict[str, Any] | None = None
    """The lorebook, kept whole (entries, their extensions and fields of later versions)."""
    tags: list[str] = []
    creator: str = ""
    character_version: str = ""
    extensions: dict[str, Any] = {}
    nickname: str | None = None
    """V3: the name `{{char}}` stands for, when set."""
    creator_notes_multilingual: dict[str, str] | None = None
    source: list[str] | None = None
    group_only_greetings: list[str] = []
    creation_date: int | float | None = None
    modification_date: int | float | None = None
    assets: list[Asset] | None = None


class Envelope(msgspec.Struct, frozen=True):
    """The outer object of a card file."""

    spec: Literal["chara_card_v2", "chara_card_v3"]
    data: CardData
    spec_version: str = ""


class Card(msgspec.Struct, frozen=True):
    """A decoded card: its spec, typed data and the `data` object exactly as it was read."""

    spec: str
    data: CardData
    raw: dict[str, Any]
    """The `data` object as decoded JSON, unknown fields included: what export writes back."""


def decode_card(payload: bytes | str, source: str) -> Card:
    """Decode card JSON; raise CardError naming the bad field (`data.name`, `spec`, ...)."""
    try:
        check_depth(payload)
        value = msgspec.json.decode(payload)
    except NestingError as exc:
        raise CardError(f"{source}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise CardError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CardError(f"{source}: a card is a JSON object, not {type(value).__name__}")
    if "spec" not in value:
        raise CardError(
            f"{source}: spec: missing; not a character card "
            f"(expected spec {V2!r} or {V3!r}, found keys: {', '.join(list(value)[:8]) or 'none'})"
        )
    if value["spec"] not in SPEC_VERSIONS:
        raise CardError(f"{source}: spec: {value['spec']!r} is not {V2!r} or {V3!r}")
    if not isinstance(value.get("data"), dict):
        raise CardError(f"{source}: data: missing or not an object")
    # Some editors write null for an empty list or object; read it as empty, keep it as written.
    data = {k: v for k, v in value["data"].items() if not (v is None and k in _EMPTY_WHEN_NULL)}
    try:
        envelope = msgspec.convert({**value, "data": data}, Envelope)
    except msgspec.ValidationError as exc:
        raise CardError(f"{source}: {_where(str(exc))}") from None
    if not envelope.data.name.strip():
        raise CardError(f"{source}: data.name: must not be empty")
    return Card(envelope.spec, envelope.data, value["data"])


_EMPTY_WHEN_NULL = frozenset(
    {"alternate_greetings", "tags", "extensions", "group_only_greetings", "creator_notes",
     "description", "personality", "scenario", "first_mes", "mes_example", "system_prompt",
     "post_history_instructions", "creator", "character_version"}
)  # fmt: skip


def card_json(raw: dict[str, Any], spec: str) -> bytes:
    """A whole card file for `raw` data under `spec` (V2 also carries the V1 top-level fields)."""
    data = {**_required(raw, spec), **raw}
    outer: dict[str, Any] = {"spec": spec, "spec_version": SPEC_VERSIONS[spec], "data": data}
    if spec == V2:
        # V1 readers look at the top level; V2 readers use `data`, as the V2 spec allows.
        for key in ("name", "description", "personality", "scenario", "first_mes", "mes_example"):
            outer[key] = data.get(key, "")
    return msgspec.json.encode(outer)


def _required(raw: dict[str, Any], spec: str) -> dict[str, Any]:
    """Fields the spec requires, at their empty values, so a minimal card exports complete."""
    required: dict[str, Any] = {
        "description": "",
        "personality": "",
        "scenario": "",
        "first_mes": "",
        "mes_example": "",
        "creator_notes": "",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": [],
        "creator": "",
        "character_version": "",
        "extensions": {},
    }
    if spec == V3:
        required["group_only_greetings"] = []
    return {k: v for k, v in required.items() if k not in raw}


def _where(message: str) -> str:
    text, _, where = message.partition(" - at `$")
    where = where.rstrip("`").lstrip(".")
    text = text.replace("`", "")
    text = text[:1].lower() + text[1:]
    if text.startswith("object missing required field "):
        text = "missing"
        where = f"{where}.{message.split('`')[1]}" if where else message.split("`")[1]
    return f"{where}: {text}" if where else text
