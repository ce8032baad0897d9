"""Smoke tests on the embedded Gemma 3 270M: structured replies and the Responses API end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx2
import jsonschema
import pytest
from openai import AsyncOpenAI
from openai.types.responses import Response
from pydantic import BaseModel, Field

from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings
from tests.api.conftest import lifespan

pytestmark = pytest.mark.slow


class Character(BaseModel):
    """A game character's line."""

    line: str = Field(max_length=120)
    mood: Literal["cheerful", "gloomy", "stern"]
    items: list[str] = Field(max_length=3)


@pytest.fixture(scope="module")
def embedded_engine() -> Iterator[Any]:
    """The embedded model's engine, started once for this module."""
    import asyncio

    from server.engine.engine import Engine

    engine = Engine.load("embedded", max_batch=4, max_adapters=1)
    engine.start()
    yield engine
    asyncio.run(engine.aclose())


@pytest.fixture
async def openai(embedded_engine: Any, tmp_path: Path) -> AsyncIterator[AsyncOpenAI]:
    """The official client on an in-process app serving the embedded model."""
    settings = ServerSettings(model="embedded", adapters_dir=str(tmp_path / "adapters"))
    app = create_app(settings, embedded_engine, catalog=Catalog.discover([]))
    async with (
        lifespan(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://localhost", timeout=600
        ) as http,
    ):
        yield AsyncOpenAI(
            base_url="http://localhost/v1", api_key="x", http_client=http, max_retries=0
        )


async def test_chat_parse_on_the_embedded_model(openai: AsyncOpenAI, embedded_engine: Any) -> None:
    completion = await openai.chat.completions.parse(
        model=embedded_engine.model_id,
        messages=[{"role": "user", "content": "You are a lighthouse keeper. Say hello."}],
        response_format=Character,
        max_tokens=200,
        temperature=0.0,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, Character)
    jsonschema.validate(json.loads(choice.message.content or ""), Character.model_json_schema())


async def test_responses_with_a_sample_persona(openai: AsyncOpenAI) -> None:
    reply = await openai.responses.create(
        model="juni", input="What lives in a tide pool?", max_output_tokens=24
    )
    Response.model_validate(reply.model_dump(mode="json"))
    assert reply.output_text.strip()
    parsed = await openai.responses.parse(
        model="juni",
        input="Describe your mood.",
        text_format=Character,
        max_output_tokens=200,
        temperature=0.0,
    )
    assert parsed.status == "completed"
    assert isinstance(parsed.output_parsed, Character)
