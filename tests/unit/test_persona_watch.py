"""Personas picked up live: added, edited, broken (last good version kept) and removed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from data.scaffold import create_persona
from server.api.persona_watch import watch_personas
from server.catalog import Catalog
from server.hotswap.types import AdapterEvent

WAIT = 10.0


@contextlib.asynccontextmanager
async def watching(catalog: Catalog, events: list[AdapterEvent]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(watch_personas(catalog, events.append, stop))
    await asyncio.sleep(0.5)  # the OS watches are in place
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def until(ready: Callable[[], bool]) -> float:
    """Seconds until `ready()` holds (fails after WAIT)."""
    start = time.monotonic()
    while not ready():
        assert time.monotonic() - start < WAIT, "the watcher did not report it"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "personas"
    root.mkdir()
    return root


async def test_a_persona_is_added_changed_broken_and_removed(folder: Path) -> None:
    catalog = Catalog([], dirs=[folder])
    events: list[AdapterEvent] = []
    async with watching(catalog, events):
        create_persona("parrot", folder)
        took = await until(lambda: catalog.get("parrot") is not None)
        assert took < 1.5
        assert events[-1].type == "persona"
        assert events[-1].message == "persona parrot was added"

        card = folder / "parrot" / "persona.toml"
        card.write_text(card.read_text().replace('"Parrot"', '"Polly"', 1))
        await until(lambda: catalog.get("parrot").card.title == "Polly")  # type: ignore[union-attr]
        assert events[-1].message == "persona parrot was reloaded"

        before = len(events)
        (folder / "parrot" / "eval.jsonl").write_text("")
        await until(lambda: len(events) > before)
        assert events[-1].message == "persona parrot was reloaded"

        card.write_text(card.read_text().replace("temperature = 0.8", "temperature = 9.0"))
        await until(lambda: "parrot" in catalog.errors)
        assert "sampling.temperature: 9.0 is outside" in catalog.errors["parrot"]
        assert events[-1].message == catalog.errors["parrot"]
        assert events[-1].type == "persona_failed"
        assert catalog.get("parrot").card.title == "Polly"  # type: ignore[union-attr]

        (folder / "parrot" / "persona.toml").unlink()
        for file in (folder / "parrot").iterdir():
            file.unlink()
        (folder / "parrot").rmdir()
        await until(lambda: catalog.get("parrot") is None)
        assert events[-1].message == "persona parrot was removed"
        assert catalog.errors == {}


def test_a_fixed_catalog_is_never_rescanned() -> None:
    assert Catalog([]).rescan() == []


def test_rescan_reports_nothing_when_nothing_changed(folder: Path) -> None:
    create_persona("parrot", folder)
    catalog = Catalog([], dirs=[folder])
    assert [c.kind for c in catalog.rescan()] == ["added"]
    assert catalog.rescan() == []
