"""Bad input gets a typed 4xx in OpenAI's envelope, is never retried, and never becomes a 5xx."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from openai import (
    AsyncOpenAI,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
)

from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings

USER = [{"role": "user", "content": "hi"}]


def envelope(exc: Any) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    return body


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"n": 9}, "n", "between 1 and 8"),
        ({"temperature": 2.5}, "temperature", "<= 2.0"),
        ({"top_p": 1.5}, "top_p", "<= 1.0"),
        ({"presence_penalty": -3}, "presence_penalty", ">= -2.0"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "length <= 4"),
        ({"max_tokens": 0}, "max_tokens", "at least 1"),
        ({"response_format": {"type": "grammar"}}, "response_format.type", "grammar"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "tools"),
        ({"logit_bias": {"cat": 5}}, "logit_bias", "not a token id"),
        ({"top_logprobs": 3}, "top_logprobs", "requires logprobs"),
        ({"stop": [""]}, "stop", "empty"),
    ],
)
async def test_bad_fields_are_refused_by_name(
    client: AsyncOpenAI, fields: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(BadRequestError) as info:
        await client.chat.completions.create(model="pip", messages=USER, **fields)
    body = envelope(info.value)
    assert info.value.status_code == 400
    assert body["param"] == param
    assert words in body["message"]
    assert body["type"] == "invalid_request_error"


async def test_unknown_model_is_404_model_not_found(client: AsyncOpenAI) -> None:
    for model in ("nobody", "pip@run-9:100", "../../etc/passwd", "/tmp"):
        with pytest.raises(NotFoundError) as info:
            await client.chat.completions.create(model=model, messages=USER)
        body = envelope(info.value)
        assert body["code"] == "model_not_found"
        assert body["param"] == "model"
    with pytest.raises(NotFoundError):
        await client.models.retrieve("nobody@run-1")


async def test_prompt_longer_than_the_context(client: AsyncOpenAI, engine: Any) -> None:
    long = [{"role": "user", "content": "gears " * engine.context_length}]
    with pytest.raises(BadRequestError) as info:
        await client.chat.completions.create(model="pip", messages=long)
    body = envelope(info.value)
    assert body["code"] == "context_length_exceeded"
    assert f"maximum context length is {engine.context_length}" in body["message"]
    with pytest.raises(BadRequestError) as info:
        await client.chat.completions.create(
            model="pip", messages=USER, max_tokens=engine.context_length
        )
    assert envelope(info.value)["code"] == "context_length_exceeded"


async def test_image_content_and_tool_role_are_refused(client: AsyncOpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(BadRequestError, match="only text content parts"):
        await client.chat.completions.create(
            model="pip", messages=[{"role": "user", "content": [image]}]
        )
    with pytest.raises(BadRequestError, match=r"messages\[0\]\.role"):
        await client.chat.completions.create(
            model="pip", messages=[{"role": "tool", "content": "x", "tool_call_id": "1"}]
        )


async def test_4xx_is_not_retried_even_with_retries_on(http: Any, request_log: Any) -> None:
    retrying = AsyncOpenAI(
        base_url=str(http.base_url.join("/v1")), api_key="x", http_client=http, max_retries=2
    )
    with pytest.raises(BadRequestError):
        await retrying.chat.completions.create(model="pip", messages=USER, n=30)
    with pytest.raises(NotFoundError):
        await retrying.chat.completions.create(model="nobody", messages=USER)
    assert len(request_log.requests) == 2


async def test_unknown_fields_are_ignored_and_malformed_json_is_400(http: Any, base: str) -> None:
    body = {"model": base, "messages": USER, "max_tokens": 1, "a_future_field": {"x": 1}}
    assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
    bad = await http.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    missing = await http.post("/v1/chat/completions", json={"messages": USER})
    assert missing.status_code == 400
    assert "model" in missing.json()["error"]["message"]


async def test_body_size_is_limited(
    settings: ServerSettings, engine: Any, catalog: Catalog
) -> None:
    small = create_app(
        msgspec.structs.replace(settings, max_body_bytes=1000), engine, catalog=catalog
    )
    async with AsyncTestClient(small, base_url="http://127.0.0.1") as http:
        text = "x" * 5000
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "pip", "messages": [{"role": "user", "content": text}]},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


async def test_api_key_guards_every_route_but_health(
    settings: ServerSettings, engine: Any, catalog: Catalog
) -> None:
    keyed = create_app(msgspec.structs.replace(settings, api_key="s3cret"), engine, catalog=catalog)
    async with AsyncTestClient(keyed, base_url="http://127.0.0.1") as http:
        assert (await http.get("/health")).status_code == 200
        for path in (
            "/v1/models", "/v1/personas", "/metrics", "/openapi.json", "/v1/adapters",
            "/v1/files", "/v1/fine_tuning/jobs", "/v1/personas/juni/evals",
            "/v1/personas/juni/data/check",
        ):  # fmt: skip
            response = await http.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "invalid_api_key"
        base_url = str(http.base_url.join("/v1"))
        wrong = AsyncOpenAI(base_url=base_url, api_key="nope", http_client=http, max_retries=0)
        with pytest.raises(AuthenticationError, match="Incorrect API key"):
            await wrong.models.list()
        right = AsyncOpenAI(base_url=base_url, api_key="s3cret", http_client=http, max_retries=0)
        assert [m.id for m in (await right.models.list()).data]
        assert [j async for j in right.fine_tuning.jobs.list()] == []


async def test_health_is_503_with_retry_after_until_the_model_loads(
    settings: ServerSettings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.engine.engine import Engine

    release = threading.Event()
    real_load = Engine.load.__func__  # type: ignore[attr-defined]

    def held_load(cls: type[Engine], model: str, **kwargs: Any) -> Engine:
        release.wait(60)
        return real_load(cls, model, **kwargs)

    monkeypatch.setattr(Engine, "load", classmethod(held_load))
    app = create_app(settings, catalog=catalog)
    async with AsyncTestClient(app, base_url="http://127.0.0.1", timeout=120) as http:
        loading = await http.get("/health")
        assert loading.status_code == 503
        assert loading.headers["retry-after"]
        assert loading.json()["status"] == "loading"
        busy = await http.post("/v1/chat/completions", json={"model": "pip", "messages": USER})
        assert busy.status_code == 503
        assert busy.headers["retry-after"]
        assert (await http.get("/v1/personas")).status_code == 200
        release.set()
        for _ in range(600):
            ready = await http.get("/health")
            if ready.status_code == 200:
                break
            await _pause()
        assert ready.status_code == 200
        assert ready.json()["status"] == "ok"


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.1)


async def test_a_model_that_fails_to_load_is_reported(catalog: Catalog, tmp_path: Path) -> None:
    app = create_app(ServerSettings(model=str(tmp_path / "no-such-model")), catalog=catalog)
    async with AsyncTestClient(app, base_url="http://127.0.0.1") as http:
        for _ in range(600):
            health = await http.get("/health")
            if health.json()["status"] == "failed":
                break
            await _pause()
        assert health.status_code == 503
        assert "no-such-model" in health.json()["message"]
        chat = await http.post("/v1/chat/completions", json={"model": "pip", "messages": USER})
        assert chat.status_code == 503
        assert chat.json()["error"]["code"] == "model_load_failed"


async def test_sync_client_sees_the_same_errors(app: Any) -> None:
    import asyncio

    from job_helpers import serving
    from openai import OpenAI

    def talk(base_url: str) -> int:
        with OpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
            with pytest.raises(NotFoundError):
                client.chat.completions.create(model="nobody", messages=USER)  # type: ignore[arg-type]
            reply = client.chat.completions.create(
                model="pip",
                messages=USER,  # type: ignore[arg-type]
                max_tokens=2,
            )
            assert reply.usage is not None
            return reply.usage.completion_tokens

    async with serving(app) as client:
        assert await asyncio.to_thread(talk, str(client.base_url)) <= 2
