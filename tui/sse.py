"""Server-sent events: turn a stream of text lines into `(event, data)` pairs."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event."""

    event: str
    """The `event:` field; `message` when the server gave none."""
    data: str


@dataclass
class SseDecoder:
    """Feed it lines (without their newline); it returns an event at each blank line."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> SseEvent | None:
        """Take one line; return the event it completes, if any."""
        line = line.rstrip("\r")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, such as a keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data))
        self._event, self._data = "", []
        return event


async def sse_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """The lines of an event stream, split on `\n` only.

    httpx's `aiter_lines` splits like `str.splitlines()`, so a raw U+2028 or U+0085 inside a
    JSON `data:` value (a reply may hold one) would cut the event in two.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    async for chunk in chunks:
        *lines, pending = (pending + decoder.decode(chunk)).split("\n")
        for line in lines:
            yield line
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending
