"""Structured outputs: `response_format` (chat) and `text.format` (responses) as engine grammars.

JSON mode and JSON schemas are enforced by constrained decoding in the engine, never by hoping the
model complies. A request's own format wins over its persona card's default; `{"type": "text"}`
turns a card's default off. The grammar ends the reply, so a request may not add stop strings
to it (they would cut the JSON); a card's default stop strings simply do not apply.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct

from data.card import ResponseFormat as CardFormat
from server.engine.types import InvalidParams, JsonGrammar
from server.errors import InvalidRequestError, UnsupportedError

if TYPE_CHECKING:
    from server.engine.engine import Engine

ANY_OBJECT = json.dumps({"type": "object"})
"""JSON mode: any JSON object, as OpenAI's `json_object` promises."""


class JsonSchemaSpec(Struct, frozen=True):
    """The `json_schema` of a response format (chat nests it; responses flatten it)."""

    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


def _grammar(kind: str, spec: Any, param: str, schema_param: str) -> JsonGrammar | None:
    if kind == "text":
        return None
    if kind == "json_object":
        return JsonGrammar(ANY_OBJECT, param)
    if kind != "json_schema":
        raise UnsupportedError(
            f"{param}.type '{kind}' is not supported; use text, json_object or json_schema",
            param=f"{param}.type",
        )
    try:
        schema = msgspec.convert(spec, JsonSchemaSpec).schema
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"{param}: {exc}", param=param) from None
    if schema is None:
        return JsonGrammar(ANY_OBJECT, param)
    return JsonGrammar(json.dumps(schema, sort_keys=True, ensure_ascii=False), schema_param)


def card_grammar(card: CardFormat | None) -> JsonGrammar | None:
    """A persona card's default format as a grammar (None for text or no default)."""
    if card is None:
        return None
    spec = msgspec.to_builtins(card.json_schema) if card.json_schema is not None else None
    return _grammar(card.type, spec, "response_format", "response_format.json_schema.schema")


def chat_grammar(requested: Any, card: CardFormat | None) -> JsonGrammar | None:
    """The grammar for chat's `response_format` (a wire ResponseFormat, or unset)."""
    if requested is None or requested is msgspec.UNSET:
        return card_grammar(card)
    spec = requested.json_schema if requested.json_schema is not msgspec.UNSET else None
    if requested.type == "json_schema" and spec is None:
        raise InvalidRequestError(
            "response_format.json_schema is required when type is json_schema",
            param="response_format.json_schema",
        )
    return _grammar(requested.type, spec, "response_format", "response_format.json_schema.schema")


def text_grammar(text_format: dict[str, Any] | None, card: CardFormat | None) -> JsonGrammar | None:
    """The grammar for the Responses API's `text.format` (flat: name, schema, strict)."""
    if text_format is None:
        return card_grammar(card)
    kind = text_format.get("type")
    if not isinstance(kind, str):
        raise InvalidRequestError("text.format.type is required", param="text.format.type")
    return _grammar(kind, text_format, "text.format", "text.format.schema")


def refuse_stop(grammar: JsonGrammar | None, stop_set: bool) -> None:
    """A request's stop strings would cut its JSON reply: refuse the pair by name."""
    if grammar is not None and stop_set:
        raise UnsupportedError(
            "'stop' cannot be combined with a JSON response format: the grammar ends the reply "
            "when the JSON is complete, and a stop string would cut it",
            param="stop",
        )


async def prepare(engine: Engine, grammar: JsonGrammar | None) -> None:
    """Compile the grammar before queueing (cached); a schema it cannot enforce is a 400."""
    if grammar is None:
        return
    try:
        await engine.compile_grammar(grammar)
    except InvalidParams as exc:
        raise InvalidRequestError(str(exc), param=grammar.param) from None
