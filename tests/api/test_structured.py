"""Structured outputs on chat completions, driven by the official client on the tiny model.

The tiny model has random weights: any valid JSON it produces is the grammar's doing. The
official SDK's `parse()` (pydantic) and `jsonschema` are the oracles.
"""

from __future__ import annotations

import json
import shutil
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
import tomlkit
from openai import AsyncOpenAI, BadRequestError, LengthFinishReasonError
from pydantic import BaseModel, Field

from tests.api.conftest import FIXTURE_PERSONAS

USER = [{"role": "user", "content": "Describe yourself."}]

GAME_SCHEMA = {
    "type": "object",
    "properties": {
        "line": {"type": "string", "maxLength": 10},
        "mood": {"enum": ["happy", "grumpy"]},
    },
    "required": ["line", "mood"],
    "additionalProperties": False,
}
QUILL = {
    "name": "quill",
    "system_prompt": "You are Quill, a game character.",
    "sampling": {"temperature": 0.0, "max_tokens": 60},
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "game_line", "strict": True, "schema": GAME_SCHEMA},
    },
}


class Mood(StrEnum):
    """An enum field."""

    HAPPY = "happy"
    SAD = "sad"


class Item(BaseModel):
    """A nested object."""

    name: str = Field(max_length=6)
    count: int = Field(ge=0, le=9)


class Sheet(BaseModel):
    """Nested objects, a bounded array, an enum, a literal and required fields."""

    mood: Mood
    kind: Literal["elf", "orc"]
    items: list[Item] = Field(min_length=1, max_length=2)
    alive: bool


@pytest.fixture
def personas_dir(tmp_path: Path) -> Path:
    """`pip` plus `quill`, whose card answers in a JSON schema by default."""
    folder = tmp_path / "personas"
    shutil.copytree(FIXTURE_PERSONAS / "pip", folder / "pip")
    (folder / "quill").mkdir()
    (folder / "quill" / "persona.toml").write_text(tomlkit.dumps(QUILL))
    return folder


async def test_parse_with_a_pydantic_model(client: AsyncOpenAI, base: str) -> None:
    """`chat.completions.parse(response_format=Model)`: nested, bounded, enum, required."""
    for seed in range(3):
        completion = await client.chat.completions.parse(
            model=base,
            messages=USER,
            response_format=Sheet,
            max_tokens=120,
            temperature=0.7,
            seed=seed,
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "stop"
        sheet = choice.message.parsed
        assert isinstance(sheet, Sheet)
        assert 1 <= len(sheet.items) <= 2
        jsonschema.validate(json.loads(choice.message.content or ""), Sheet.model_json_schema())


async def test_json_object_mode_streams_an_object(client: AsyncOpenAI, base: str) -> None:
    stream = await client.chat.completions.create(
        model=base,
        messages=USER,
        response_format={"type": "json_object"},
        max_tokens=60,
        temperature=0.0,
        stream=True,
    )
    text, finish = "", None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text.startswith("{")
    if finish == "stop":
        assert isinstance(json.loads(text), dict)
    else:
        assert finish == "length"


async def test_a_cut_reply_is_length(client: AsyncOpenAI, base: str) -> None:
    with pytest.raises(LengthFinishReasonError):
        await client.chat.completions.parse(
            model=base, messages=USER, response_format=Sheet, max_tokens=3
        )


async def test_the_persona_card_default_and_the_request_override(client: AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(model="quill", messages=USER)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content or ""), GAME_SCHEMA)
    plain = await client.chat.completions.create(
        model="quill", messages=USER, response_format={"type": "text"}, max_tokens=4
    )
    assert not (plain.choices[0].message.content or "").startswith('{"line"')


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "schema": {"type": "array", "uniqueItems": True},
                    },
                }
            },
            "response_format.json_schema.schema",
            "uniqueItems",
        ),
        (
            {"response_format": {"type": "json_object"}, "stop": ["}"]},
            "stop",
            "cut",
        ),
        ({"response_format": {"type": "grammar"}}, "response_format.type", "not supported"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "required"),
    ],
)
async def test_bad_formats_are_refused_by_name(
    client: AsyncOpenAI, base: str, fields: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(BadRequestError) as info:
        await client.chat.completions.create(model=base, messages=USER, **fields)
    body = info.value.body
    assert isinstance(body, dict)
    assert body["param"] == param
    assert words in body["message"]


async def test_langchain_with_structured_output(http: Any, base: str, request_log: Any) -> None:
    """LangChain's `with_structured_output(method="json_schema")`, chat and Responses flavours."""
    langchain_openai = pytest.importorskip("langchain_openai")

    class Verdict(BaseModel):
        """A small schema LangChain turns into a strict json_schema format."""

        mood: Literal["happy", "sad"]
        score: int = Field(ge=0, le=9)

    for use_responses_api in (False, True):
        model = langchain_openai.ChatOpenAI(
            model=base,
            base_url=str(http.base_url.join("/v1")),
            api_key="unused",
            http_async_client=http,
            max_retries=0,
            temperature=0.0,
            max_tokens=40,
            use_responses_api=use_responses_api,
        )
        structured = model.with_structured_output(Verdict, method="json_schema")
        verdict = await structured.ainvoke("How do you feel?")
        assert isinstance(verdict, Verdict)
    paths = {request.url.path for request in request_log.requests}
    assert paths == {"/v1/chat/completions", "/v1/responses"}


async def test_text_completions_take_a_response_format(client: AsyncOpenAI, base: str) -> None:
    """vLLM's `response_format` on /v1/completions: the same grammar on a raw prompt."""
    schema = {
        "type": "object",
        "properties": {"yes": {"type": "boolean"}},
        "required": ["yes"],
        "additionalProperties": False,
    }
    reply = await client.completions.create(
        model=base,
        prompt="Answer:",
        max_tokens=20,
        temperature=0.0,
        extra_body={
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema},
            }
        },
    )
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].text), schema)
