"""The Responses API, driven by the official client against the real app on the tiny model.

Every raw reply and event is validated with the `openai` package's own types (`Response`,
`ResponseStreamEvent`, `ResponseItemList`) as the outside oracle.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import httpx2
import jsonschema
import msgspec
import pytest
from litestar import Litestar
from openai import AsyncOpenAI, NotFoundError
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from pydantic import BaseModel, Field, TypeAdapter

from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings
from tests.api.test_stream import WAIT, Served, adapter_root, served, until

__all__ = ["adapter_root", "served"]

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
PIP_PROMPT = "You are Pip, a cheerful robot who loves gears."


def tokens(engine: Any, messages: list[dict[str, str]]) -> int:
    """How many prompt tokens the chat template makes of these messages."""
    return len(engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True))


async def post(http: httpx2.AsyncClient, body: dict[str, Any]) -> httpx2.Response:
    """A raw POST /v1/responses."""
    return await http.post("/v1/responses", json=body)


async def test_create_validates_and_uses_the_persona(
    http: httpx2.AsyncClient, client: AsyncOpenAI, engine: Any
) -> None:
    raw = await post(http, {"model": "pip", "input": "Hello there"})
    assert raw.status_code == 200
    reply = Response.model_validate(raw.json())
    assert reply.object == "response"
    assert reply.status == "incomplete"  # pip's card: five-token replies
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.output[0].type == "message"
    assert reply.output[0].content[0].type == "output_text"
    assert reply.usage is not None
    assert reply.usage.output_tokens == 5
    expected = [
        {"role": "system", "content": PIP_PROMPT},
        {"role": "user", "content": "Hello there"},
    ]
    assert reply.usage.input_tokens == tokens(engine, expected)
    assert reply.usage.total_tokens == reply.usage.input_tokens + 5
    assert reply.temperature == 0.0  # from the card
    sdk = await client.responses.create(model="pip", input="Hello there")
    assert sdk.output_text == reply.output_text  # greedy: the same reply


async def test_instructions_and_developer_messages_replace_the_persona_prompt(
    client: AsyncOpenAI, engine: Any
) -> None:
    reply = await client.responses.create(model="pip", input="Hi", instructions="Be terse.")
    expected = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    assert reply.usage is not None
    assert reply.usage.input_tokens == tokens(engine, expected)
    reply = await client.responses.create(
        model="pip",
        input=[
            {"role": "developer", "content": "Rule one."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        ],
    )
    expected = [{"role": "system", "content": "Rule one."}, {"role": "user", "content": "Hi"}]
    assert reply.usage is not None
    assert reply.usage.input_tokens == tokens(engine, expected)


async def test_stream_sends_the_full_event_sequence(
    http: httpx2.AsyncClient, client: AsyncOpenAI
) -> None:
    body = {"model": "pip", "input": "Tell me about gears.", "stream": True}
    events = []
    async with http.stream("POST", "/v1/responses", json=body) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        name = None
        async for line in raw.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                event = EVENTS.validate_python(json.loads(line[6:]))
                assert event.type == name
                events.append(event)
    kinds = [e.type for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 1
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(numbers)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].response.output[0].content[0].text == text
    # The SDK's helper wants `response.completed`: end-of-turn is forced after two tokens.
    ending = {"logit_bias": {"106": 100}, "min_tokens": 2}
    async with client.responses.stream(
        model="pip", input="Tell me about gears.", extra_body=ending
    ) as stream:
        seen = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert seen[0] == "response.created"
    assert seen[-1] == "response.completed"
    assert final.status == "completed"
    assert final.usage is not None
    assert final.usage.output_tokens == 3
    stored = await client.responses.retrieve(final.id)
    assert stored.output_text == final.output_text


async def test_store_retrieve_list_delete(http: httpx2.AsyncClient, client: AsyncOpenAI) -> None:
    reply = await client.responses.create(
        model="pip",
        input=[
            {"role": "user", "content": "One"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Two"}]},
            {"role": "user", "content": "Three"},
        ],
        metadata={"scene": "intro"},
    )
    got = await client.responses.retrieve(reply.id)
    assert got.id == reply.id
    assert got.output_text == reply.output_text
    assert got.metadata == {"scene": "intro"}
    raw = await http.get(f"/v1/responses/{reply.id}/input_items", params={"order": "asc"})
    listed = ResponseItemList.model_validate(raw.json())
    assert [item.role for item in listed.data] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    page = await client.responses.input_items.list(reply.id, limit=2)
    assert [item.role for item in page.data] == ["user", "assistant"]  # type: ignore[union-attr]
    assert page.has_more
    await client.responses.delete(reply.id)
    with pytest.raises(NotFoundError) as info:
        await client.responses.retrieve(reply.id)
    body = info.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    unstored = await client.responses.create(model="pip", input="Hi", store=False)
    assert unstored.store is False
    with pytest.raises(NotFoundError):
        await client.responses.retrieve(unstored.id)
    for bad in ("resp_nothing", "../../etc/passwd"):
        with pytest.raises(NotFoundError):
            await client.responses.retrieve(bad)


async def test_previous_response_id_continues_after_a_restart(
    client: AsyncOpenAI,
    engine: Any,
    settings: ServerSettings,
    catalog: Catalog,
    running: Any,
) -> None:
    first = await client.responses.create(model="pip", input="My name is Ada.")
    again = create_app(settings, engine, catalog=catalog)
    async with (
        running(again),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=again), base_url="http://localhost"
        ) as http,
    ):
        fresh = AsyncOpenAI(
            base_url="http://localhost/v1", api_key="x", http_client=http, max_retries=0
        )
        second = await fresh.responses.create(
            model="pip", input="What is my name?", previous_response_id=first.id
        )
        with pytest.raises(NotFoundError):
            await fresh.responses.create(
                model="pip", input="Hi", previous_response_id="resp_" + "0" * 32
            )
    expected = [
        {"role": "system", "content": PIP_PROMPT},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.previous_response_id == first.id
    assert second.usage is not None
    assert second.usage.input_tokens == tokens(engine, expected)


class Reply(BaseModel):
    """A schema for `responses.parse`: enum, bounded array, nested object, required fields."""

    mood: Literal["calm", "cross"]
    tags: list[Literal["a", "b"]] = Field(min_length=1, max_length=2)
    ok: bool


async def test_parse_and_json_schema_format(client: AsyncOpenAI, base: str) -> None:
    parsed = await client.responses.parse(
        model=base, input="Reply in JSON.", text_format=Reply, max_output_tokens=80, temperature=0
    )
    assert parsed.status == "completed", parsed.output_text
    assert isinstance(parsed.output_parsed, Reply)
    async with client.responses.stream(
        model=base, input="Reply in JSON.", text_format=Reply, max_output_tokens=80, temperature=0
    ) as stream:
        final = await stream.get_final_response()
    assert final.output_parsed == parsed.output_parsed  # greedy: the same reply, streamed
    schema = {"type": "object", "properties": {"n": {"enum": [1, 2]}}, "required": ["n"]}
    schema["additionalProperties"] = False
    reply = await client.responses.create(
        model=base,
        input="Pick.",
        text={"format": {"type": "json_schema", "name": "pick", "schema": schema, "strict": True}},
        max_output_tokens=40,
    )
    assert reply.status == "completed"
    jsonschema.validate(json.loads(reply.output_text), schema)
    assert reply.text is not None
    assert reply.text.format is not None
    assert reply.text.format.type == "json_schema"


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        (
            {"tools": [{"type": "function", "name": "f", "parameters": {}}]},
            "tools",
            "does not call tools",
        ),
        ({"tool_choice": "auto"}, "tool_choice", "does not call tools"),
        ({"reasoning": {"effort": "high"}}, "reasoning", "reason"),
        ({"truncation": "auto"}, "truncation", "disabled"),
        ({"background": True}, "background", "foreground"),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]},
            "input[0].type",
            "'function_call'",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "http://x/y.png"}],
                    }
                ]
            },
            "input[0].content[0].type",
            "'input_image'",
        ),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"not": {}}}}},
            "text.format.schema",
            "not",
        ),
    ],
)
async def test_refusals_name_the_field(
    http: httpx2.AsyncClient, fields: dict[str, Any], param: str, words: str
) -> None:
    raw = await post(http, {"model": "pip", "input": "Hi", **fields})
    assert raw.status_code == 400
    error = raw.json()["error"]
    assert error["param"] == param
    assert words in error["message"]


async def test_empty_tools_and_null_reasoning_are_accepted(http: httpx2.AsyncClient) -> None:
    body = {"model": "pip", "input": "Hi", "tools": [], "tool_choice": "none", "reasoning": None}
    raw = await post(http, body | {"truncation": "disabled"})
    assert raw.status_code == 200
    Response.model_validate(raw.json())
    raw = await post(http, {"model": "nobody", "input": "Hi"})
    assert raw.status_code == 404
    assert raw.json()["error"]["code"] == "model_not_found"


async def test_stream_disconnect_frees_the_row(
    served: Served, engine: Any, force: Any, base: str
) -> None:
    before = engine.stats()
    body = {
        "model": base,
        "input": "Tell me about gears.",
        "max_output_tokens": 1500,
        "stream": True,
        "logit_bias": force(" cat"),
    }
    async with (
        httpx2.AsyncClient(base_url=served.url, timeout=WAIT) as http,
        http.stream("POST", "/v1/responses", json=body) as response,
    ):
        seen = 0
        async for line in response.aiter_lines():
            seen += line.startswith("data: ")
            if seen == 6:
                break
    await until(lambda: engine.stats().cancelled > before.cancelled)
    await until(lambda: engine.stats().active == 0)
    assert engine.stats().finished == before.finished


async def test_concurrent_responses_and_chat_share_the_engine(
    client: AsyncOpenAI, app: Litestar
) -> None:
    replies = await asyncio.gather(
        client.responses.create(model="pip", input="a"),
        client.chat.completions.create(model="pip", messages=[{"role": "user", "content": "a"}]),
    )
    assert replies[0].output_text
    assert replies[1].choices[0].message.content


async def test_the_key_the_body_limit_and_metrics_apply(
    settings: ServerSettings, engine: Any, catalog: Catalog, running: Any, http: httpx2.AsyncClient
) -> None:
    limited = msgspec.structs.replace(settings, api_key="s3cret", max_body_bytes=1000)
    guarded = create_app(limited, engine, catalog=catalog)
    async with (
        running(guarded),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=guarded), base_url="http://localhost"
        ) as raw,
    ):
        body = {"model": "pip", "input": "Hi"}
        response = await raw.post("/v1/responses", json=body)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        response = await raw.get("/v1/responses/resp_" + "0" * 32)
        assert response.status_code == 401
        key = {"Authorization": "Bearer s3cret"}
        response = await raw.post("/v1/responses", json=body | {"input": "x" * 5000}, headers=key)
        assert response.status_code == 413
    assert (await post(http, {"model": "pip", "input": "Hi"})).status_code == 200
    text = (await http.get("/metrics")).text
    assert 'route="/v1/responses",status="200"' in text
    assert 'persona_generation_tokens_total{model="pip"}' in text


async def test_non_streaming_disconnect_frees_the_row(
    served: Served, engine: Any, force: Any, base: str
) -> None:
    before = engine.stats()
    body = {
        "model": base,
        "input": "Tell me about gears.",
        "max_output_tokens": 1500,
        "logit_bias": force(" cat"),
    }
    async with httpx2.AsyncClient(base_url=served.url, timeout=WAIT) as http:
        request = asyncio.create_task(http.post("/v1/responses", json=body))
        await until(lambda: engine.stats().active > 0)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    await until(lambda: engine.stats().cancelled > before.cancelled)
    await until(lambda: engine.stats().active == 0)
    assert engine.stats().finished == before.finished


async def test_persona_adapter_names_the_version_that_answered(
    adapter_root: Any, settings: ServerSettings, engine: Any, catalog: Catalog, running: Any
) -> None:
    app = create_app(settings, engine, catalog=catalog)
    async with (
        running(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://localhost", timeout=WAIT
        ) as http,
    ):
        for model in ("juni", "juni@run-1:100"):
            raw = await post(http, {"model": model, "input": "Hi", "max_output_tokens": 4})
            reply = Response.model_validate(raw.json())
            assert reply.model == model
            assert (reply.model_extra or {})["persona_adapter"] == "run-1:100"
        body = {"model": "juni", "input": "Hi", "max_output_tokens": 4, "stream": True}
        async with http.stream("POST", "/v1/responses", json=body) as stream:
            lines = [line async for line in stream.aiter_lines() if line.startswith("data: ")]
        last = json.loads(lines[-1][6:])
        assert last["response"]["persona_adapter"] == "run-1:100"
