"""A job's event log: appended to `events.jsonl`, kept in memory, and fanned out to live readers.

Each line is flushed as it is written, so after a crash the log holds every event up to the last
one; a torn last line is skipped when the log is read back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from .types import JobEvent

EVENTS_FILE = "events.jsonl"
_encoder = msgspec.json.Encoder()


class EventLog:
    """The events of one job or evaluation, oldest first."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.path = folder / EVENTS_FILE
        """The append-only file."""
        self.prefix = prefix
        """Event ids are `<prefix>-<n>`."""
        self.events: list[JobEvent] = self._read()
        self._readers: set[asyncio.Queue[JobEvent | None]] = set()
        self.closed = False
        """True once the job has finished: readers end after the last event."""

    def _read(self) -> list[JobEvent]:
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError:
            return []
        events = []
        for line in lines:
            try:
                events.append(msgspec.json.decode(line, type=JobEvent))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        return events

    def add(
        self,
        message: str,
        *,
        level: Literal["info", "warn", "error"] = "info",
        kind: Literal["message", "metrics"] = "message",
        data: dict[str, Any] | None = None,
    ) -> JobEvent:
        """Record one event, write it out and hand it to every live reader."""
        event = JobEvent(
            id=f"{self.prefix}-{len(self.events) + 1}",
            created_at=int(time.time()),
            level=level,
            message=message,
            type=kind,
            data=data,
        )
        self.events.append(event)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(_encoder.encode(event) + b"\n")
        for queue in self._readers:
            queue.put_nowait(event)
        return event

    def close(self) -> None:
        """No more events will come; live readers end."""
        self.closed = True
        for queue in self._readers:
            queue.put_nowait(None)

    def reopen(self) -> None:
        """The job runs again (resumed): readers may follow it anew."""
        self.closed = False

    def page(self, after: str | None, limit: int) -> tuple[list[JobEvent], bool]:
        """Newest first, starting below the event `after` (OpenAI's cursor), and whether more."""
        newest_first = list(reversed(self.events))
        if after is not None:
            ids = [e.id for e in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        return newest_first[:limit], len(newest_first) > limit

    async def follow(
        self, after: str | None = None, keepalive: float = 15.0
    ) -> AsyncIterator[JobEvent | None]:
        """Every event after `after` (all when None), then live ones until the log closes.

        Yields None after `keepalive` seconds without an event, so a stream can send a comment.
        """
        queue: asyncio.Queue[JobEvent | None] = asyncio.Queue()
        self._readers.add(queue)
        try:
            ids = [e.id for e in self.events]
            start = ids.index(after) + 1 if after in ids else 0
            for event in self.events[start:]:
                yield event
            if self.closed:
                return
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield None
                    continue
                if item is None:
                    return
                yield item
        finally:
            self._readers.discard(queue)
