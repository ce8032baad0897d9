"""The adapter admin API over real HTTP: list, pin, follow, events, vLLM load/unload, traversal."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from adapter_files import publish_bad, publish_random
from openai import AsyncOpenAI, BadRequestError, NotFoundError

from adapters.registry import Registry
from server.app import create_app
from server.catalog import Catalog
from server.hotswap.service import AdapterService
from server.settings import ServerSettings

PERSONA = "juni"
WAIT = 60.0


@dataclass
class Live:
    """A running server and clients for it."""

    url: str
    http: httpx2.AsyncClient
    openai: AsyncOpenAI
    root: Path
    model_dir: Path
    service: AdapterService


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tiny_model_dir: Path) -> AsyncIterator[Any]:
    """One engine for the module: loading the 262k-token tokenizer dominates set-up."""
    from server.engine.engine import Engine

    engine = await asyncio.to_thread(Engine.load, str(tiny_model_dir), max_batch=4, max_adapters=4)
    engine.start()
    yield engine
    await engine.aclose()


@pytest_asyncio.fixture(loop_scope="module")
async def live(tmp_path: Path, tiny_model_dir: Path, engine: Any) -> AsyncIterator[Live]:
    import uvicorn

    catalog = Catalog.discover([])
    assert catalog.get(PERSONA) is not None
    root = tmp_path / "adapters"
    service = AdapterService(
        Registry(root),
        engine,
        lambda: [p.name for p in catalog.personas()],
        pins_path=tmp_path / "pins.json",
    )
    await service.start()
    # Juni's card has a guard, trained for the embedded model only (see conftest.py).
    settings = ServerSettings(model=str(tiny_model_dir), adapters_dir=str(root), guard=False)
    app = create_app(settings, engine, service, catalog=catalog)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with httpx2.AsyncClient(base_url=url, timeout=WAIT) as http:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        yield Live(url, http, client, root, tiny_model_dir, service)
        await client.close()
        await service.aclose()
        server.should_exit = True
        await task


class Events:
    """Reads `event: adapter` messages from `GET /v1/adapters/events`."""

    def __init__(self, response: httpx2.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self, persona: str = PERSONA) -> dict[str, Any]:
        """The next adapter event about `persona`."""
        event, data = "", ""
        async with asyncio.timeout(WAIT):
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    data = line.partition(":")[2].strip()
                elif not line and data:
                    payload = json.loads(data)
                    assert event == "adapter"
                    if payload["persona"] == persona:
                        return payload
                    event, data = "", ""
        raise AssertionError("the event stream ended")

    async def connected(self) -> None:
        """Wait for the stream's opening comment: from then on no event is missed."""
        async with asyncio.timeout(WAIT):
            async for line in self.lines:
                if line.startswith(":"):
                    return


async def chat(live: Live, model: str) -> tuple[str, str | None]:
    """A greedy reply from `model` and the adapter version that produced it."""
    response = await live.openai.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Tell me about the sea."}],
        max_tokens=8,
        temperature=0.0,
        extra_body={"min_tokens": 8},
    )
    extra = response.model_extra or {}
    return response.choices[0].message.content or "", extra.get("persona_adapter")


async def test_hot_reload_is_announced_and_serves_the_next_request(live: Live) -> None:
    before, version = await chat(live, PERSONA)
    assert version is None
    async with live.http.stream("GET", "/v1/adapters/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = Events(response)
        await events.connected()
        publish_random(live.root, PERSONA, live.model_dir, step=10)
        event = await events.next()
        assert (event["type"], event["version"]) == ("loaded", "run-1:10")
        after, version = await chat(live, PERSONA)
        assert version == "run-1:10"
        assert after != before

        publish_bad(live.root, PERSONA, live.model_dir, "truncated", run="run-1", step=20)
        event = await events.next()
        assert event["type"] == "failed"
        assert "truncated" in event["message"]
        assert (await chat(live, PERSONA))[1] == "run-1:10"

    listing = (await live.http.get("/v1/adapters")).json()
    assert listing["object"] == "list"
    juni = next(p for p in listing["data"] if p["persona"] == PERSONA)
    assert juni["mode"] == "follow"
    assert juni["active"] == "run-1:10"
    assert juni["last_error"]["version"] == "run-1:20"
    assert "truncated" in juni["last_error"]["message"]
    assert juni["runs"][0]["latest"] == 10  # the broken drop never moved the marker
    assert [c["version"] for c in juni["runs"][0]["checkpoints"]] == ["run-1:10", "run-1:20"]


async def test_pin_roll_back_and_follow_over_http(live: Live) -> None:
    sub = live.service.subscribe()
    for step in (10, 20):
        publish_random(live.root, PERSONA, live.model_dir, run="run-1", step=step, seed=step)
        await asyncio.wait_for(sub.__anext__(), WAIT)
    ids = {m.id async for m in live.openai.models.list()}
    assert {"juni", "juni@run-1", "juni@run-1:10", "juni@run-1:20", "juni@run-1:latest"} <= ids

    pinned = await live.http.post("/v1/adapters/juni/activate", json={"run": "run-1", "step": 10})
    assert pinned.status_code == 200
    assert (pinned.json()["mode"], pinned.json()["active"]) == ("pinned", "run-1:10")
    assert (await chat(live, PERSONA))[1] == "run-1:10"
    assert (await chat(live, "juni@run-1:20"))[1] == "run-1:20"
    model = await live.openai.models.retrieve("juni")
    assert (model.model_extra or {}).get("root") == "run-1:10"

    followed = await live.http.post("/v1/adapters/juni/follow")
    assert (followed.json()["mode"], followed.json()["active"]) == ("follow", "run-1:20")
    assert (await chat(live, PERSONA))[1] == "run-1:20"

    missing = await live.http.post("/v1/adapters/juni/activate", json={"run": "run-7"})
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    unknown = await live.http.post("/v1/adapters/nobody/follow")
    assert unknown.status_code == 404


async def test_vllm_load_and_unload(live: Live) -> None:
    ckpt = publish_random(live.root, PERSONA, live.model_dir, step=30, seed=7)
    loaded = await live.http.post(
        "/v1/load_lora_adapter", json={"lora_name": "sea-voice", "lora_path": str(ckpt.path)}
    )
    assert loaded.status_code == 200, loaded.text
    assert "sea-voice" in {m.id async for m in live.openai.models.list()}
    assert (await chat(live, "sea-voice"))[1] == "run-1:30"
    again = await live.http.post(
        "/v1/load_lora_adapter", json={"lora_name": "sea-voice", "lora_path": str(ckpt.path)}
    )
    assert again.status_code == 400
    assert again.json()["error"]["param"] == "lora_name"

    gone = await live.http.post("/v1/unload_lora_adapter", json={"lora_name": "sea-voice"})
    assert gone.status_code == 200
    with pytest.raises(NotFoundError):
        await chat(live, "sea-voice")
    twice = await live.http.post("/v1/unload_lora_adapter", json={"lora_name": "sea-voice"})
    assert twice.status_code == 404


async def test_path_traversal_is_refused(live: Live, tmp_path: Path) -> None:
    ckpt = publish_random(live.root, PERSONA, live.model_dir, step=10)
    outside = tmp_path / "outside" / PERSONA / "run-1" / "checkpoints"
    shutil.copytree(ckpt.path, outside / "0000010")
    os.symlink(tmp_path / "outside" / PERSONA, live.root / "escape")
    attempts = [
        "../../etc",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "/etc",
        "%2e%2e/%2e%2e/etc",
        "..%2F..%2Fetc",
        str(outside / "0000010"),
        "escape/run-1/checkpoints/0000010",
        str(ckpt.path.parent.parent),
        f"{ckpt.path}/../../../../..",
    ]
    for attempt in attempts:
        response = await live.http.post(
            "/v1/load_lora_adapter", json={"lora_name": "evil", "lora_path": attempt}
        )
        assert response.status_code == 400, attempt
        assert response.json()["error"]["param"] == "lora_path"
    for name in ("../../etc", "/etc/passwd", "juni@run-1", "JUNI", ""):
        response = await live.http.post(
            "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(ckpt.path)}
        )
        assert response.status_code == 400, name
    for path in (
        "/v1/adapters/%2e%2e/activate",
        "/v1/adapters/..%2F..%2Fetc/follow",
        "/v1/adapters/%2e%2e%2f%2e%2e%2fetc/follow",
    ):
        response = await live.http.post(path, json={"run": "run-1"})
        assert 400 <= response.status_code < 500, path
    bad_run = await live.http.post("/v1/adapters/juni/activate", json={"run": "../../etc"})
    assert bad_run.status_code == 400
    for model in ("../../etc/passwd", "juni@../../etc", "juni@run-1:../../x", str(ckpt.path)):
        with pytest.raises((NotFoundError, BadRequestError)):
            await chat(live, model)
    assert (await live.http.get("/v1/adapters")).status_code == 200


async def test_lora_names_and_steps_are_matched_whole(live: Live) -> None:
    ckpt = publish_random(live.root, PERSONA, live.model_dir, step=40, seed=9)
    for name in ("probe\n", "probe\r\n", "probe\n\n", "pröbe", "a" * 64, "probe@run-1"):
        refused = await live.http.post(
            "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(ckpt.path)}
        )
        assert refused.status_code == 400, (name, refused.text)
        assert refused.json()["error"]["param"] == "lora_name"
    for step in ("0000040\n", "²", "٤٠", "9" * 5000):
        path = str(ckpt.path.parent / step)
        refused = await live.http.post(
            "/v1/load_lora_adapter", json={"lora_name": "probe", "lora_path": path}
        )
        assert refused.status_code == 400, (step[:10], refused.text)
        assert len(refused.text) < 1000
    assert "probe" not in {m.id async for m in live.openai.models.list()}
