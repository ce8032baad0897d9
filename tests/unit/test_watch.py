"""The watchfiles loop reports changed personas, and survives a failing handler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from server.hotswap.watch import watch_registry

WAIT = 30.0


@contextlib.asynccontextmanager
async def watching(
    root: Path, on_change: Callable[[set[str] | None], Awaitable[None]]
) -> AsyncIterator[asyncio.Task[None]]:
    """The watch loop over `root`, ready when entered and stopped (and awaited) on exit."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch_registry(root, on_change, stop, ready=ready))
    try:
        async with asyncio.timeout(WAIT):
            await ready.wait()
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def test_changes_are_reported_and_errors_do_not_stop_the_loop(tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    calls: list[set[str] | None] = []
    seen = asyncio.Event()

    async def on_change(personas: set[str] | None) -> None:
        calls.append(personas)
        if len(calls) == 1:
            raise RuntimeError("a handler bug")
        if personas and "juni" in personas:
            seen.set()

    async with watching(root, on_change) as task:
        assert calls == [None]  # the start-up rescan, which failed
        folder = root / "juni" / "run-1" / "checkpoints" / "0000010"
        folder.mkdir(parents=True)
        (folder / "adapters.safetensors").write_bytes(b"weights are never watched")
        (folder / "manifest.json").write_text("{}")
        async with asyncio.timeout(WAIT):
            await seen.wait()
        assert not task.done()
    assert task.done()
    assert all(c is None or c == {"juni"} for c in calls)


async def test_weights_alone_raise_no_change(tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    folder = root / "juni" / "run-1" / "checkpoints" / "0000010"
    folder.mkdir(parents=True)
    calls: list[set[str] | None] = []
    marker = asyncio.Event()

    async def on_change(personas: set[str] | None) -> None:
        calls.append(personas)
        if personas and "zed" in personas:
            marker.set()

    async with watching(root, on_change):
        for i in range(5):
            (folder / "adapters.safetensors").write_bytes(b"x" * i)
        (root / "zed").mkdir()  # a later change that passes the filter marks the end
        async with asyncio.timeout(WAIT):
            await marker.wait()
    assert {"juni"} not in calls
