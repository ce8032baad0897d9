"""Server-sent events: turn a stream of text lines into `(event, data)` pairs."""

from __future__ import annotations

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
