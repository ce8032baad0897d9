"""The adapter event stream and admin errors over real HTTP, with a scripted engine (no MLX)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import uvicorn
from litestar import Litestar

import server.api.routes.adapters as adapter_api
from adapters.manifest import LoraParams, Manifest
from adapters.registry import Registry, publish_checkpoint
from server.api.routes.adapters import adapter_routes
from server.catalog import Catalog
from server.engine.types import AdapterBusy, AdapterError, AdapterRef
from server.errors import handle_exception
from server.hotswap.service import AdapterService
from server.metrics import ServerMetrics
from server.settings import ServerSettings
from server.state import ServerState

WAIT = 30.0
CONFIG = b'{"fine_tune_type": "lora", "num_layers": 1, "lora_parameters": {"rank": 2, "scale": 1}}'


class ScriptedEngine:
    """Stands in for the engine: loads whatever is not marked `refuse` in its metrics."""

    model_id = "base"
    base_hash = "b" * 16

    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.busy_once: set[str] = set()

    async def load_adapter(self, ref: AdapterRef) -> None:
        if "busy" in ref.manifest.metrics and ref.manifest.key not in self.busy_once:
            self.busy_once.add(ref.manifest.key)
            raise AdapterBusy("all 2 adapter slots serve running requests")
        if "refuse" in ref.manifest.metrics:
            raise AdapterError("lora_a has shape (3, 2), the layer needs (4, 2)")
        self.loaded.insert(0, ref.manifest.key)

    async def unload_adapter(self, key: str) -> None:
        self.loaded.remove(key)

    def loaded_adapters(self) -> list[str]:
        return list(self.loaded)


def safetensors(path: Path) -> None:
    """A valid one-tensor safetensors file."""
    header = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)


def publish(root: Path, step: int, *, refuse: bool = False, busy: bool = False) -> None:
    """Publish a checkpoint of `juni` run-1 the way the trainer does."""
    metrics = {"refuse": 1.0} if refuse else {"busy": 1.0} if busy else {}
    lora = LoraParams(2, 1.0, num_layers=1)
    manifest = Manifest(
        "juni", "run-1", step, "base", ScriptedEngine.base_hash, lora, "", time.time(), 0.0, metrics
    )
    publish_checkpoint(Registry(root).run_dir("juni", "run-1"), manifest, safetensors, CONFIG)


@dataclass
class Live:
    url: str
    http: httpx2.AsyncClient
    root: Path
    service: AdapterService


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    monkeypatch.setattr(adapter_api, "KEEPALIVE_SECONDS", 0.05)
    root = tmp_path / "adapters"
    engine = ScriptedEngine()
    service = AdapterService(
        Registry(root), engine, lambda: ["juni"], pins_path=tmp_path / "pins.json"
    )  # type: ignore[arg-type]
    await service.start()
    state = ServerState.create(ServerSettings(), Catalog([]), ServerMetrics(4, lambda: None))
    state.adapters = service
    app = Litestar(
        route_handlers=adapter_routes(),
        state=state,
        exception_handlers={Exception: handle_exception},
    )
    server = uvicorn.Server(
        uvicorn.Config(app, port=0, log_level="warning", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
            await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    async with httpx2.AsyncClient(base_url=url, timeout=WAIT) as http:
        yield Live(url, http, root, service)
    await service.aclose()
    server.should_exit = True
    await task


async def test_events_keepalives_and_cleanup(live: Live) -> None:
    lines: list[str] = []
    async with live.http.stream("GET", "/v1/adapters/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        stream = response.aiter_lines()
        async with asyncio.timeout(WAIT):
            async for line in stream:
                lines.append(line)
                if line == ": keepalive":
                    break
        events = []
        for step, refuse in ((10, True), (20, False)):
            publish(live.root, step, refuse=refuse)
            async with asyncio.timeout(WAIT):
                async for line in stream:
                    if line.startswith("data:"):
                        events.append(json.loads(line[5:]))
                        break
                    if line.startswith("event:"):
                        assert line == "event: adapter"
    assert lines[0] == ": connected"
    assert [(e["type"], e["version"]) for e in events] == [
        ("failed", "run-1:10"),
        ("loaded", "run-1:20"),
    ]
    assert "shape" in events[0]["message"]
    assert set(events[0]) == {"type", "persona", "version", "message", "time"}
    async with asyncio.timeout(WAIT):
        while live.service.hub.subscriber_count:  # noqa: ASYNC110 - a count, not an event
            await asyncio.sleep(0.01)


async def test_admin_errors_use_the_openai_envelope(live: Live) -> None:
    publish(live.root, 10)
    cases = [
        ("GET", "/v1/adapters/nobody", None, 404),
        ("POST", "/v1/adapters/nobody/follow", None, 404),
        ("POST", "/v1/adapters/juni/activate", {"step": 3}, 400),
        ("POST", "/v1/adapters/juni/activate", {"run": "../x"}, 400),
        ("POST", "/v1/adapters/juni/activate", {"run": "run-1", "step": "ten"}, 400),
        ("POST", "/v1/adapters/juni/activate", {"run": "run-1", "step": 999}, 404),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "x"}, 400),
        ("POST", "/v1/load_lora_adapter", {"lora_name": "x", "lora_path": "/etc"}, 400),
        ("POST", "/v1/unload_lora_adapter", {"lora_name": "x"}, 404),
    ]
    for method, path, body, status in cases:
        response = await live.http.request(method, path, json=body)
        assert response.status_code == status, (path, body, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
    listing = (await live.http.get("/v1/adapters")).json()
    assert [p["persona"] for p in listing["data"]] == ["juni"]


async def test_a_checkpoint_refused_for_busy_slots_loads_by_itself_later(live: Live) -> None:
    sub = live.service.subscribe()
    publish(live.root, 10)
    assert (await sub.next(WAIT)).type == "loaded"  # type: ignore[union-attr]
    publish(live.root, 20, busy=True)
    event = await sub.next(WAIT)
    assert event is not None
    assert (event.type, event.version) == ("failed", "run-1:20")
    assert "retrying" in event.message
    assert live.service.active_version("juni") == "run-1:10"
    # No follow or activate: the retry loads it once a slot is free.
    event = await sub.next(WAIT)
    assert event is not None
    assert (event.type, event.version) == ("loaded", "run-1:20")
    assert live.service.active_version("juni") == "run-1:20"
