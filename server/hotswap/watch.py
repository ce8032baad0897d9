"""The watchfiles loop over the adapters folder: reports which personas' checkpoints changed.

Only manifests (written last, by rename) and folders pass the filter, never `*.safetensors`,
which is rewritten at every save. Folders pass because a checkpoint folder renamed into place,
or created and filled faster than inotify adds a watch on it, raises no event for the manifest
inside; the consumer rescans the persona, so a missed file event cannot hide a checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import Change, awatch

from adapters.manifest import MANIFEST
from adapters.registry import SAFE_NAME

log = logging.getLogger("persona.adapters.watch")

POLL_MS = 100
"""How often an idle watcher wakes; its first wake-up proves the OS watches are in place."""
RETRY_SECONDS = 1.0
"""Pause before restarting the watcher after it failed (for example, the folder vanished)."""

OnChange = Callable[[set[str] | None], Awaitable[None]]
"""Called with the personas whose folders changed, or None when everything must be rescanned."""


def passes(change: Change, path: str) -> bool:
    """The watch filter: manifests, and folders with registry-safe names."""
    name = os.path.basename(path)
    if name == MANIFEST:
        return True
    if not SAFE_NAME.fullmatch(name):
        return False
    if change == Change.deleted:
        return True
    return change == Change.added and os.path.isdir(path)


def personas_of(root: Path, paths: set[str]) -> set[str]:
    """The persona folder names that changed paths belong to."""
    names = set()
    for path in paths:
        try:
            rel = Path(path).relative_to(root)
        except ValueError:
            continue
        if rel.parts and SAFE_NAME.fullmatch(rel.parts[0]):
            names.add(rel.parts[0])
    return names


async def watch_registry(
    root: Path,
    on_change: OnChange,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    debounce_ms: int = 10,
    step_ms: int = 5,
) -> None:
    """Watch `root` until `stop` is set; errors are logged and the loop carries on.

    watchfiles reports a change once `step_ms` pass with no further event (at most
    `debounce_ms` after the first), so `step_ms` is most of what the watcher adds to a swap.
    `ready` is set once the OS watches exist; `on_change(None)` then rescans everything, so a
    checkpoint published while the watcher was starting is not missed.
    """
    root = await asyncio.to_thread(root.resolve)
    while not stop.is_set():
        try:
            await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
            async for changes in awatch(
                root,
                watch_filter=passes,
                debounce=debounce_ms,
                step=step_ms,
                stop_event=stop,
                rust_timeout=POLL_MS,
                yield_on_timeout=True,
            ):
                if ready is not None and not ready.is_set():
                    await _deliver(on_change, None)
                    ready.set()
                await _deliver(on_change, personas_of(root, {path for _, path in changes}))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("adapter watcher failed; restarting")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_SECONDS)
            # Anything could have changed while nobody watched.
            await _deliver(on_change, None)


async def _deliver(on_change: OnChange, personas: set[str] | None) -> None:
    if personas is not None and not personas:
        return
    try:
        await on_change(personas)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("handling adapter changes failed")
