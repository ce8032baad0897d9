"""Streaming, disconnects and concurrent mixed-persona requests; a real socket where it matters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from adapter_files import publish_random
from litestar import Litestar
from openai import AsyncOpenAI

from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings

USER = [{"role": "user", "content": "Tell me about gears."}]
WAIT = 120.0


@dataclass
class Served:
    """A uvicorn server on a free loopback port, running the app in this event loop."""

    url: str
    openai: AsyncOpenAI


@pytest.fixture
async def served(app: Litestar) -> AsyncIterator[Served]:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    yield Served(url, client)
    await client.close()
    server.should_exit = True
    await task


async def until(check: Callable[[], bool]) -> None:
    """Poll a condition the engine thread will make true; fail after a generous wait."""
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - the engine thread offers no event to await
            await asyncio.sleep(0.02)


async def test_stream_chunks_role_first_stable_id_usage_last(
    client: AsyncOpenAI, force: Any
) -> None:
    stream = await client.chat.completions.create(
        model="pip",
        messages=USER,
        max_tokens=4,
        logit_bias=force(" cat"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " cat" * 4
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"
    assert all(f is None for f in finishes[:-1])
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert all("persona_adapter" in (c.model_extra or {}) for c in chunks)


async def test_stream_wire_format_ends_with_done(http: Any, force: Any) -> None:
    body = {
        "model": "pip",
        "messages": USER,
        "max_tokens": 2,
        "stream": True,
        "logit_bias": force(" cat"),
    }
    response = await http.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2][len("data: ") :])
    assert last["choices"][0]["finish_reason"] == "length"
    assert "usage" not in last


async def test_stream_stop_and_text_completion_stream(client: AsyncOpenAI, force: Any) -> None:
    stream = await client.chat.completions.create(
        model="pip",
        messages=USER,
        max_tokens=20,
        stop="cat cat",
        logit_bias=force(" cat"),
        stream=True,
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == " "
    assert chunks[-1].choices[0].finish_reason == "stop"
    text_stream = await client.completions.create(
        model="pip", prompt="Once", max_tokens=3, logit_bias=force(" cat"), stream=True
    )
    pieces = [c async for c in text_stream]
    assert "".join(c.choices[0].text for c in pieces) == " cat cat cat"
    assert pieces[-1].choices[0].finish_reason == "length"


async def test_streaming_and_whole_replies_agree(client: AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(model="pip", messages=USER, max_tokens=6)
    stream = await client.chat.completions.create(
        model="pip", messages=USER, max_tokens=6, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == whole.choices[0].message.content


@pytest.mark.parametrize("n", [1, 3])
async def test_stream_disconnect_cancels_the_sequence(
    served: Served, engine: Any, force: Any, base: str, n: int
) -> None:
    before = engine.stats()
    body = {
        "model": base,
        "messages": USER,
        "max_tokens": 1500,
        "stream": True,
        "logit_bias": force(" cat"),
        "n": n,
    }
    async with (
        httpx2.AsyncClient(base_url=served.url, timeout=WAIT) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        seen = 0
        async for line in response.aiter_lines():
            seen += line.startswith("data: ")
            if seen == 3:
                break
    await until(lambda: engine.stats().cancelled >= before.cancelled + n)
    await until(lambda: engine.stats().active == 0)
    assert engine.stats().finished == before.finished


@pytest.mark.parametrize("n", [1, 3])
async def test_non_streaming_disconnect_cancels_the_sequence(
    served: Served, engine: Any, force: Any, base: str, n: int
) -> None:
    before = engine.stats()
    body = {
        "model": base,
        "messages": USER,
        "max_tokens": 1500,
        "logit_bias": force(" cat"),
        "n": n,
    }
    async with httpx2.AsyncClient(base_url=served.url, timeout=WAIT) as http:
        request = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        await until(lambda: engine.stats().active > 0)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    await until(lambda: engine.stats().cancelled >= before.cancelled + n)
    await until(lambda: engine.stats().active == 0)
    assert engine.stats().finished == before.finished


@pytest.fixture
def adapter_root(settings: ServerSettings, tiny_model_dir: Path) -> Path:
    """A registry where `juni` has one random (valid) adapter, published before start-up."""
    root = Path(str(settings.adapters_dir))
    publish_random(root, "juni", tiny_model_dir, step=100, seed=3)
    return root


async def test_concurrent_mixed_personas_share_the_engine(
    adapter_root: Path,
    settings: ServerSettings,
    engine: Any,
    catalog: Catalog,
    base: str,
    running: Any,
) -> None:
    app = create_app(settings, engine, catalog=catalog)
    transport = httpx2.ASGITransport(app=app)
    async with (
        running(app),
        httpx2.AsyncClient(transport=transport, base_url="http://localhost", timeout=WAIT) as http,
    ):
        client = AsyncOpenAI(
            base_url=str(http.base_url.join("/v1")), api_key="x", http_client=http, max_retries=0
        )
        before = dict(engine.stats().batch_sizes)
        models = ["juni", "pip", base, "juni@run-1:100", "juni", "pip"]
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(model=m, messages=USER, max_tokens=24, seed=i)
                for i, m in enumerate(models)
            )
        )
        adapters = [(r.model, (r.model_extra or {})["persona_adapter"]) for r in replies]
        assert adapters == [
            ("juni", "run-1:100"),
            ("pip", None),
            (base, None),
            ("juni@run-1:100", "run-1:100"),
            ("juni", "run-1:100"),
            ("pip", None),
        ]
        assert all(r.usage is not None and r.usage.completion_tokens > 0 for r in replies)
        after = dict(engine.stats().batch_sizes)
        shared = sum(after.get(size, 0) - before.get(size, 0) for size in after if size > 1)
        assert shared > 0, "no decode step ran more than one sequence"
        listed = {m.id: m for m in (await client.models.list()).data}
        assert (listed["juni"].model_extra or {})["root"] == "run-1:100"
        assert "juni@run-1:100" in listed
        persona = (await http.get("/v1/personas/juni")).json()
        assert persona["active_adapter"] == "run-1:100"
        metrics = (await http.get("/metrics")).text
        assert 'persona_lora_requests_total{adapter="run-1:100",persona="juni"} 3.0' in metrics
        assert "persona_time_to_first_token_seconds_bucket" in metrics
        assert 'persona_engine_batch_steps{size="' in metrics
        assert 'persona_http_requests_total{method="POST",route="/v1/chat/completions"' in metrics
