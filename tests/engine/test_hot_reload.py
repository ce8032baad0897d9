"""Hot reload against the real engine and tiny model: new checkpoints serve the next request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from adapter_files import BAD_KINDS, publish_bad, publish_random

from adapters.registry import ModelRef, Registry, parse_model_id
from server.hotswap.events import Subscription
from server.hotswap.service import AdapterNotFoundError, AdapterService
from server.hotswap.types import AdapterEvent

PERSONAS = ("juni", "ada", "bo")
WAIT = 60.0
"""Upper bound for an event to arrive; tests wait on events, never on the clock."""


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tiny_model_dir: Path) -> AsyncIterator[object]:
    """One engine for the module: loading the 262k-token tokenizer dominates set-up."""
    from server.engine.engine import Engine

    eng = await asyncio.to_thread(Engine.load, str(tiny_model_dir), max_batch=4, max_adapters=2)
    eng.start()
    yield eng
    await eng.aclose()


@pytest.fixture
def adapters_root(tmp_path: Path) -> Path:
    return tmp_path / "adapters"


@pytest_asyncio.fixture(loop_scope="module")
async def service(
    adapters_root: Path, engine: object, tmp_path: Path
) -> AsyncIterator[AdapterService]:
    svc = AdapterService(
        Registry(adapters_root), engine, lambda: PERSONAS, pins_path=tmp_path / "pins.json"
    )  # type: ignore[arg-type]
    await svc.start()
    yield svc
    await svc.aclose()


async def next_event(sub: Subscription, persona: str, kind: str | None = None) -> AdapterEvent:
    """The next event about `persona` (of `kind`, if given); fails after WAIT seconds."""
    async with asyncio.timeout(WAIT):
        async for event in sub:
            if event.persona == persona and (kind is None or event.type == kind):
                return event
    raise AssertionError("the event stream ended")


async def reply(engine: object, service: AdapterService, model: str) -> tuple[str, str | None]:
    """Greedy 8-token reply to a fixed prompt as `model`, and the adapter version reported."""
    from server.engine.engine import GenerationRequest, SamplingParams

    adapter = service.resolve(parse_model_id(model))
    prompt = tuple(engine.tokenizer.encode("Tell me about the sea."))  # type: ignore[attr-defined]
    params = SamplingParams(max_tokens=8, temperature=0.0, min_tokens=8)
    text, version = "", None
    async for delta in engine.stream(GenerationRequest(prompt, params, adapter)):  # type: ignore[attr-defined]
        text += delta.text
        version = delta.adapter_version
    return text, version


async def test_a_new_checkpoint_serves_the_next_request(
    engine: object, service: AdapterService, adapters_root: Path, tiny_model_dir: Path
) -> None:
    base_text, base_version = await reply(engine, service, "juni")
    assert base_version is None
    sub = service.subscribe()
    ckpt = publish_random(adapters_root, "juni", tiny_model_dir, step=10)
    event = await next_event(sub, "juni")
    assert (event.type, event.version) == ("loaded", "run-1:10")
    text, version = await reply(engine, service, "juni")
    assert version == ckpt.manifest.version == service.active_version("juni")
    assert text != base_text


async def test_a_running_request_finishes_on_its_version(
    engine: object, service: AdapterService, adapters_root: Path, tiny_model_dir: Path
) -> None:
    from server.engine.engine import GenerationRequest, SamplingParams

    sub = service.subscribe()
    publish_random(adapters_root, "juni", tiny_model_dir, step=10, seed=1)
    await next_event(sub, "juni", "loaded")
    prompt = tuple(engine.tokenizer.encode("Hello"))  # type: ignore[attr-defined]
    params = SamplingParams(max_tokens=40, temperature=0.0, min_tokens=40)
    adapter = service.resolve(ModelRef("juni"))
    versions = []
    swapped = False
    async for delta in engine.stream(GenerationRequest(prompt, params, adapter)):  # type: ignore[attr-defined]
        versions.append(delta.adapter_version)
        if not swapped:
            swapped = True
            publish_random(adapters_root, "juni", tiny_model_dir, run="run-1", step=20, seed=2)
            await next_event(sub, "juni", "loaded")
    assert set(versions) == {"run-1:10"}
    assert len(versions) > 1
    _, version = await reply(engine, service, "juni")
    assert version == "run-1:20"


async def test_pin_roll_back_and_follow(
    engine: object,
    service: AdapterService,
    adapters_root: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    sub = service.subscribe()
    for step in (10, 20, 30):
        publish_random(adapters_root, "juni", tiny_model_dir, run="run-1", step=step, seed=step)
        await next_event(sub, "juni", "loaded")
    assert service.active_version("juni") == "run-1:30"
    assert {"juni@run-1", "juni@run-1:10", "juni@run-1:30", "juni@run-1:latest"} <= set(
        service.model_ids()
    )

    state = await service.activate("juni", "run-1", 10)
    assert (state.mode, state.active) == ("pinned", "run-1:10")
    assert "run-1:10" in state.loaded
    _, version = await reply(engine, service, "juni")
    assert version == "run-1:10"

    # A pinned persona ignores new checkpoints; a drop for another persona marks the point
    # where the watcher has certainly seen juni's.
    publish_random(adapters_root, "juni", tiny_model_dir, run="run-1", step=40, seed=40)
    publish_random(adapters_root, "ada", tiny_model_dir, step=5)
    await next_event(sub, "ada", "loaded")
    await service.settled()
    assert service.active_version("juni") == "run-1:10"
    _, version = await reply(engine, service, "juni@run-1:40")
    assert version == "run-1:40"

    # Pins survive a restart.
    again = AdapterService(
        Registry(adapters_root),
        engine,
        lambda: PERSONAS,
        watch=False,
        pins_path=tmp_path / "pins.json",
    )  # type: ignore[arg-type]
    await again.start()
    assert (again.state("juni").mode, again.active_version("juni")) == ("pinned", "run-1:10")
    await again.aclose()

    state = await service.follow("juni")
    assert (state.mode, state.active) == ("follow", "run-1:40")
    with pytest.raises(AdapterNotFoundError):
        await service.activate("juni", "run-9", None)
    with pytest.raises(AdapterNotFoundError):
        await service.activate("juni", "run-1", 999)


async def test_lru_keeps_the_engine_bound_and_reloads_lazily(
    engine: object, service: AdapterService, adapters_root: Path, tiny_model_dir: Path
) -> None:
    sub = service.subscribe()
    for i, persona in enumerate(PERSONAS):
        publish_random(adapters_root, persona, tiny_model_dir, step=10, seed=i)
        await next_event(sub, persona, "loaded")
    assert len(engine.loaded_adapters()) == 2  # type: ignore[attr-defined]
    assert service.state("juni").loaded == []  # evicted: least recently used
    assert service.state("bo").loaded == ["run-1:10"]
    _, version = await reply(engine, service, "juni")
    assert version == "run-1:10"
    assert service.state("juni").loaded == ["run-1:10"]
    assert len(engine.loaded_adapters()) == 2  # type: ignore[attr-defined]


async def test_fifty_bad_drops_during_live_streaming(
    engine: object, service: AdapterService, adapters_root: Path, tiny_model_dir: Path
) -> None:
    sub = service.subscribe()
    publish_random(adapters_root, "juni", tiny_model_dir, step=1)
    await next_event(sub, "juni", "loaded")
    _, good_version = await reply(engine, service, "juni")
    stop = asyncio.Event()
    served: list[str | None] = []
    errors: list[BaseException] = []

    async def client() -> None:
        while not stop.is_set():
            try:
                served.append((await reply(engine, service, "juni"))[1])
            except Exception as exc:
                errors.append(exc)

    clients = [asyncio.create_task(client()) for _ in range(3)]
    failures = []
    for i in range(50):
        kind = BAD_KINDS[i % len(BAD_KINDS)]
        publish_bad(adapters_root, "juni", tiny_model_dir, kind, run="run-1", step=100 + i, seed=i)
        event = await next_event(sub, "juni")
        failures.append((kind, event))
    stop.set()
    await asyncio.gather(*clients)

    assert errors == []
    assert len(served) >= 3
    assert set(served) == {good_version}
    for kind, event in failures:
        assert event.type == "failed", (kind, event)
        assert event.message, kind
    assert [e.version for _, e in failures] == [f"run-1:{100 + i}" for i in range(50)]
    state = service.state("juni")
    assert state.active == good_version
    assert state.last_error is not None
    assert state.last_error.version == "run-1:149"
    assert all(not m.endswith(tuple(f":{100 + i}" for i in range(50))) for m in service.model_ids())

    publish_random(adapters_root, "juni", tiny_model_dir, run="run-1", step=200)
    assert (await next_event(sub, "juni")).type == "loaded"


async def test_a_checkpoint_being_written_is_ignored(
    engine: object, service: AdapterService, adapters_root: Path, tiny_model_dir: Path
) -> None:
    sub = service.subscribe()
    folder = publish_random(adapters_root, "juni", tiny_model_dir, step=10).path
    await next_event(sub, "juni", "loaded")
    # A second step with weights and config but no manifest yet: still being written.
    half = folder.with_name("0000020")
    half.mkdir()
    for name in ("adapters.safetensors", "adapter_config.json"):
        (half / name).write_bytes((folder / name).read_bytes())
    publish_random(adapters_root, "ada", tiny_model_dir, step=5)
    await next_event(sub, "ada", "loaded")
    await service.settled()
    assert service.active_version("juni") == "run-1:10"
    assert "juni@run-1:20" not in service.model_ids()
    assert [c.step for c in service.state("juni").runs[0].checkpoints] == [10]


async def test_start_up_serves_what_is_already_on_disk(
    engine: object, adapters_root: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    publish_random(adapters_root, "juni", tiny_model_dir, step=10, seed=3)
    publish_bad(adapters_root, "juni", tiny_model_dir, "truncated", run="run-1", step=20)
    svc = AdapterService(
        Registry(adapters_root), engine, lambda: PERSONAS, watch=False, pins_path=tmp_path / "p"
    )  # type: ignore[arg-type]
    await svc.start()
    state = svc.state("juni")
    assert state.active == "run-1:10"
    assert state.last_error is not None
    assert "truncated" in state.last_error.message
    await svc.aclose()
