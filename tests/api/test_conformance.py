"""Every body and every SSE chunk of every route, validated by the official `openai` types.

The oracle is the SDK's own pydantic models (`model_validate` on the raw JSON): a missing
`object`, a missing `logprobs: null` or a wrongly typed field fails here as it fails in clients
that validate (pydantic-ai, the SDK's `.stream()` helper).
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI
from openai.types import Completion, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.shared import ErrorObject

USER = [{"role": "user", "content": "Tell me about gears."}]


async def sse(http: httpx2.AsyncClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON payload of every `data:` event of a streamed response, `[DONE]` checked last."""
    async with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        text = (await response.aread()).decode()
    events = [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


async def post(http: httpx2.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


@pytest.mark.parametrize("extra", [{}, {"logprobs": True, "top_logprobs": 2}, {"n": 3, "seed": 1}])
async def test_chat_completion_bodies_validate(
    http: httpx2.AsyncClient, extra: dict[str, Any]
) -> None:
    body = await post(
        http,
        "/v1/chat/completions",
        {"model": "pip", "messages": USER, "max_tokens": 3, "temperature": 1, **extra},
    )
    reply = ChatCompletion.model_validate(body)
    assert body["object"] == "chat.completion"
    assert len(reply.choices) == extra.get("n", 1)
    assert [c.index for c in reply.choices] == list(range(len(reply.choices)))
    for choice in body["choices"]:
        assert "logprobs" in choice
        assert choice["message"]["refusal"] is None
        assert (choice["logprobs"] is None) == ("logprobs" not in extra)


@pytest.mark.parametrize("include_usage", [False, True])
async def test_chat_chunks_validate_with_usage_null_until_the_last(
    http: httpx2.AsyncClient, include_usage: bool
) -> None:
    chunks = await sse(
        http,
        "/v1/chat/completions",
        {
            "model": "pip",
            "messages": USER,
            "max_tokens": 3,
            "stream": True,
            "logprobs": True,
            "top_logprobs": 1,
            "stream_options": {"include_usage": include_usage},
        },
    )
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["object"] == "chat.completion.chunk"
        for choice in chunk["choices"]:
            assert "logprobs" in choice
            assert "finish_reason" in choice
    if include_usage:
        assert all(c["usage"] is None for c in chunks[:-1])
        assert chunks[-1]["usage"]["completion_tokens"] == 3
        assert chunks[-1]["choices"] == []
    else:
        assert all("usage" not in c for c in chunks)


async def test_chat_chunks_of_n_choices_carry_their_index(http: httpx2.AsyncClient) -> None:
    chunks = await sse(
        http,
        "/v1/chat/completions",
        {"model": "pip", "messages": USER, "max_tokens": 3, "n": 2, "stream": True, "seed": 3},
    )
    finished: dict[int, str] = {}
    roles: list[int] = []
    for chunk in chunks:
        for choice in ChatCompletionChunk.model_validate(chunk).choices:
            if choice.delta.role == "assistant":
                roles.append(choice.index)
            if choice.finish_reason is not None:
                finished[choice.index] = choice.finish_reason
    assert sorted(roles) == [0, 1]
    assert finished == {0: "length", 1: "length"}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"logprobs": 2},
        {"echo": True},
        {"n": 2, "seed": 5},
        {"prompt": ["Once upon", "The gear"]},
        {"prompt": [[2, 818], [2, 669, 3065]], "n": 2},
    ],
)
async def test_completion_bodies_and_pieces_validate(
    http: httpx2.AsyncClient, base: str, extra: dict[str, Any]
) -> None:
    request = {"model": base, "prompt": "Once upon", "max_tokens": 2, "temperature": 1, **extra}
    body = await post(http, "/v1/completions", request)
    reply = Completion.model_validate(body)
    assert body["object"] == "text_completion"
    prompts = request["prompt"] if isinstance(request["prompt"], list) else [request["prompt"]]
    assert len(reply.choices) == len(prompts) * extra.get("n", 1)
    assert [c.index for c in reply.choices] == list(range(len(reply.choices)))
    assert all("logprobs" in c for c in body["choices"])
    pieces = await sse(
        http,
        "/v1/completions",
        {**request, "stream": True, "stream_options": {"include_usage": True}},
    )
    seen: set[int] = set()
    for piece in pieces:
        # OpenAI streams `finish_reason: null` until a choice ends; the SDK's Completion type
        # (used for whole bodies) has no null, so a piece is validated as if it had ended.
        ended = [{**c, "finish_reason": c["finish_reason"] or "stop"} for c in piece["choices"]]
        for choice in Completion.model_validate({**piece, "choices": ended}).choices:
            seen.add(choice.index)
        assert all("finish_reason" in c for c in piece["choices"])
        assert piece["object"] == "text_completion"
    assert seen == set(range(len(reply.choices)))
    assert all(p["usage"] is None for p in pieces[:-1])
    assert pieces[-1]["usage"]["completion_tokens"] == 2 * len(reply.choices)


async def test_models_list_and_retrieve_validate(http: httpx2.AsyncClient, base: str) -> None:
    listed = (await http.get("/v1/models")).json()
    assert listed["object"] == "list"
    for item in listed["data"]:
        assert Model.model_validate(item).object == "model"
    for model in (base, "pip"):
        one = (await http.get(f"/v1/models/{model}")).json()
        assert Model.model_validate(one).id == model
        assert one["object"] == "model"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", {"model": "nobody", "messages": USER}),
        ("POST", "/v1/chat/completions", {"model": "pip", "messages": USER, "n": 9}),
        ("POST", "/v1/completions", {"model": "pip", "prompt": ["a", 3]}),
        ("GET", "/v1/models/nobody", None),
    ],
)
async def test_error_bodies_validate(
    http: httpx2.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await http.request(method, path, json=body)
    assert 400 <= response.status_code < 500
    payload = response.json()
    assert set(payload) == {"error"}
    error = ErrorObject.model_validate(payload["error"])
    assert error.message
    assert set(payload["error"]) == {"message", "type", "param", "code"}


async def test_the_sdk_stream_helper_reaches_a_final_completion(
    client: AsyncOpenAI, force: Any
) -> None:
    async with client.chat.completions.stream(
        model="pip",
        messages=USER,
        max_tokens=4,
        stop=["cat cat"],
        logit_bias=force(" cat"),
        stream_options={"include_usage": True},
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_completion()
    assert "content.delta" in kinds
    assert "content.done" in kinds
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == " "
    assert final.usage is not None
    assert final.usage.completion_tokens == 2
