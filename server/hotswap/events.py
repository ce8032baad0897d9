"""A small in-process broadcaster of adapter events for server-sent-event subscribers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from server.hotswap.types import AdapterEvent

QUEUE_SIZE = 256
"""Events kept per subscriber; a subscriber that falls further behind loses the oldest."""


class Subscription(AsyncIterator[AdapterEvent]):
    """One subscriber's queue; registered on creation, so no event after `subscribe()` is lost."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[AdapterEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self.closed = False

    def put(self, event: AdapterEvent | None) -> None:
        """Queue an event (None ends the iteration), dropping the oldest when full."""
        if self.closed:
            return
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> AdapterEvent:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    async def next(self, within: float | None = None) -> AdapterEvent | None:
        """The next event, or None when `within` seconds pass first or the hub closes."""
        try:
            return await asyncio.wait_for(self.__anext__(), within)
        except (TimeoutError, StopAsyncIteration):
            return None

    def close(self) -> None:
        """Stop receiving events."""
        self.closed = True
        self._hub.discard(self)

    async def aclose(self) -> None:
        """Async form of `close`, for `contextlib.aclosing`."""
        self.close()


class EventHub:
    """Fans each published event out to every current subscriber."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        """A new subscription that receives every event published from now on."""
        sub = Subscription(self)
        self._subscribers.add(sub)
        return sub

    def discard(self, sub: Subscription) -> None:
        """Forget a subscriber."""
        self._subscribers.discard(sub)

    def publish(self, event: AdapterEvent) -> None:
        """Deliver an event to every subscriber without waiting."""
        for sub in list(self._subscribers):
            sub.put(event)

    def close(self) -> None:
        """End every subscriber's iteration."""
        for sub in list(self._subscribers):
            sub.put(None)
        self._subscribers.clear()

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are listening."""
        return len(self._subscribers)
