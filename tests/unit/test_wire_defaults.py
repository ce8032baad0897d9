"""No response type may drop a field for equalling its default (msgspec `omit_defaults`)."""

from __future__ import annotations

import inspect

import msgspec
import pytest

import server.errors
import server.hotswap.types
import server.wire.drafts
import server.wire.openai
import server.wire.personas
import server.wire.records
import server.wire.responses

MODULES = [
    server.wire.openai,
    server.wire.responses,
    server.wire.drafts,
    server.wire.personas,
    server.wire.records,
    server.hotswap.types,
    server.errors,
]


def structs() -> list[type[msgspec.Struct]]:
    return [
        value
        for module in MODULES
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == module.__name__
    ]


@pytest.mark.parametrize("struct", structs(), ids=lambda s: s.__name__)
def test_no_wire_struct_omits_its_defaults(struct: type[msgspec.Struct]) -> None:
    # omit_defaults drops `object: Literal[...]` constants and OpenAI's explicit nulls; a
    # field that may be absent is `UNSET` instead, which msgspec always leaves out.
    assert not struct.__struct_config__.omit_defaults


def test_the_object_constant_and_nulls_are_encoded() -> None:
    from server.wire.openai import AssistantMessage, ChatChoice, Model, ModelList

    choice = ChatChoice(0, AssistantMessage("assistant", "hi"), "stop")
    assert msgspec.json.decode(msgspec.json.encode(choice)) == {
        "index": 0,
        "message": {"role": "assistant", "content": "hi", "refusal": None},
        "finish_reason": "stop",
        "logprobs": None,
    }
    listed = msgspec.json.decode(msgspec.json.encode(ModelList([Model("m", 1, "me")])))
    assert listed["object"] == "list"
    assert listed["data"][0]["object"] == "model"
