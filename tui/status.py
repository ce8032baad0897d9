"""What the status bar knows about the server, and how it says it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .api import ServerHealth
from .wire import AdapterEvent, PersonaAdapters


@dataclass(frozen=True)
class ServerStatus:
    """The server as the TUI last saw it."""

    url: str
    health: ServerHealth = field(default_factory=lambda: ServerHealth("down", "not checked yet"))
    model: str | None = None
    """The base model id the server loaded."""
    adapters: tuple[PersonaAdapters, ...] = ()
    last_event: AdapterEvent | None = None
    started_server: bool = False
    """True when the TUI started this server itself."""


def describe_event(event: AdapterEvent) -> str:
    """One line for an adapter event: what happened, to which version, when."""
    when = time.strftime("%H:%M:%S", time.localtime(event.time)) if event.time else ""
    version = f" {event.version}" if event.version else ""
    text = f"{event.persona}{version} {event.type}"
    if event.type == "persona":
        text = event.message  # "persona parrot was added"
    elif event.type == "persona_failed":
        text = f"persona {event.persona}: card not loaded"
    if event.type == "failed" and event.message:
        text += f": {event.message}"
    return f"{text} {when}".strip()


def describe_health(status: ServerStatus) -> tuple[str, str]:
    """(text, css class) for the health badge."""
    health = status.health
    if health.state == "ready":
        return "● ready", "-ready"
    if health.state == "failed":
        return "✗ model failed to load", "-down"
    if health.state == "loading":
        return "◌ loading model", "-loading"
    if status.started_server:
        return "◌ starting server", "-loading"
    return "○ disconnected, retrying", "-down"


def describe_adapters(adapters: tuple[PersonaAdapters, ...]) -> str:
    """Each persona's active version, marked when pinned."""
    parts = []
    for entry in adapters:
        version = entry.active or "no adapter"
        pin = " (pinned)" if entry.mode == "pinned" else ""
        parts.append(f"{entry.persona} {version}{pin}")
    return ", ".join(parts) or "no adapters"


def describe_status(status: ServerStatus) -> str:
    """The status line after the badge: URL, model, active adapters, last hot-reload event."""
    parts = [status.url]
    if status.model:
        parts.append(f"model {status.model}")
    if status.health.state == "ready":
        parts.append(describe_adapters(status.adapters))
    elif status.health.detail:
        parts.append(status.health.detail)
    if status.last_event is not None:
        parts.append(f"last: {describe_event(status.last_event)}")
    return " │ ".join(parts)
