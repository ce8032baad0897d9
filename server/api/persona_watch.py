"""The watchfiles loop over the personas folders: a card, dataset or eval suite that changes is
served within a second, and announced on the adapter event stream.

Only the files a persona is made of (and folders, which a persona created by rename arrives as)
pass the filter. Each batch of changes rescans the catalog; the catalog decides what was added,
changed, removed, or broke (a broken card keeps its last good version serving).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

from data.personas import CARD
from server.catalog import DATA_FILES, Catalog, PersonaChange
from server.hotswap.types import AdapterEvent, EventType

log = logging.getLogger("persona.personas.watch")

WATCHED = frozenset((CARD, *DATA_FILES))
RETRY_SECONDS = 1.0
"""Pause before restarting the watcher after it failed."""

Publish = Callable[[AdapterEvent], None]


def passes(change: Change, path: str) -> bool:
    """The watch filter: persona files, and folders that are not hidden staging folders."""
    name = os.path.basename(path)
    if name in WATCHED:
        return True
    if name.startswith("."):
        return False
    return change == Change.deleted or os.path.isdir(path)


def event_of(change: PersonaChange) -> AdapterEvent:
    """The event a persona change is announced with (no version)."""
    kind: EventType = "persona_failed" if change.kind == "error" else "persona"
    return AdapterEvent(kind, change.persona, None, change.message, time.time())


async def watch_personas(
    catalog: Catalog,
    publish: Publish,
    stop: asyncio.Event,
    *,
    debounce_ms: int = 50,
    step_ms: int = 20,
) -> None:
    """Rescan `catalog` whenever its writable folders change, until `stop` is set."""
    roots = [d for d in catalog.dirs if not _read_only(d)]
    while not stop.is_set() and roots:
        try:
            for root in roots:
                await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
            async for _ in awatch(
                *roots,
                watch_filter=passes,
                debounce=debounce_ms,
                step=step_ms,
                stop_event=stop,
                rust_timeout=200,
            ):
                await rescan(catalog, publish)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("persona watcher failed; restarting")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_SECONDS)
            await rescan(catalog, publish)


async def rescan(catalog: Catalog, publish: Publish) -> list[PersonaChange]:
    """Rescan the catalog off the event loop and publish each change; errors are logged."""
    try:
        changes = await asyncio.to_thread(catalog.rescan)
    except Exception:
        log.exception("rescanning the personas failed")
        return []
    for change in changes:
        if change.kind == "error":
            log.warning("persona %s: %s", change.persona, change.message)
        else:
            log.info("%s", change.message)
        publish(event_of(change))
    return changes


class PersonaWatcher:
    """Runs `watch_personas` as a task; `aclose` stops it."""

    def __init__(self, catalog: Catalog, publish: Publish) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            watch_personas(catalog, publish, self._stop), name="persona-watcher"
        )

    async def aclose(self) -> None:
        """Stop watching."""
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._task, 5)


def _read_only(folder: Path) -> bool:
    from data.personas import is_sample

    return is_sample(folder)
