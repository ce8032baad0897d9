"""What a screen may ask of the app that hosts it, as a Protocol, so screens never import the app.

`StudioApp` satisfies it; a screen reaches it through `StudioScreen.studio`. The reactive
attributes (`status`, `connection`, `adapter_event`) are watched by name with `Screen.watch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .api import ApiClient
    from .conversations import ConversationStore
    from .settings import TuiSettings
    from .status import ServerStatus
    from .wire import AdapterEvent


class StudioHost(Protocol):
    """The app-wide state and actions screens share."""

    client: ApiClient
    """The one HTTP door to the server."""
    settings: TuiSettings
    """The TUI's settings (server URL, model, ...)."""
    conversations: ConversationStore
    """Saved chats."""
    status: ServerStatus
    """Server health, base model, active adapters and the last hot-reload event (reactive)."""
    connection: int
    """Bumped every time the connection to the server is (re)established (reactive)."""
    adapter_event: AdapterEvent | None
    """The newest adapter event from the server (reactive)."""
    persona_made: str | None
    """The persona this TUI created or imported last (reactive)."""
    personas_version: int
    """Bumped whenever the server's personas changed (reactive)."""

    async def refresh_adapters(self) -> None:
        """Re-read every persona's adapter state from the server."""
        ...
