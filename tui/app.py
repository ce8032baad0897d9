"""The persona studio TUI: six screens over one server connection, built by `make_app`."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen

from data.home import conversations_dir, home_dir

from .api import ApiClient, ApiError, ServerHealth
from .conversations import ConversationStore
from .screens.adapters import AdaptersScreen
from .screens.chat import ChatScreen
from .screens.compare import CompareScreen
from .screens.data import DataScreen
from .screens.eval import EvalScreen
from .screens.persona_dialogs import ImportCardDialog, NewPersonaDialog
from .screens.train import TrainScreen
from .server_process import ServerProcess, is_local, serve_argv
from .settings import TuiSettings
from .status import ServerStatus
from .widgets.nav_bar import SCREENS
from .wire import AdapterEvent, PersonaCreated

SCREEN_KEYS = Binding.Group("Screens")


class StudioApp(App[None]):
    """Chat, train, manage adapters, compare, check data and evaluate, all over HTTP."""

    CSS_PATH = "app.tcss"
    TITLE = "persona studio"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "chat": ChatScreen,
        "train": TrainScreen,
        "adapters": AdaptersScreen,
        "compare": CompareScreen,
        "data": DataScreen,
        "eval": EvalScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        *[
            Binding(
                key, f"switch_mode('{mode}')", title, group=SCREEN_KEYS, key_display=key.upper()
            )
            for mode, key, title in SCREENS
        ],
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    status: reactive[ServerStatus] = reactive(ServerStatus(""), always_update=True)
    """The server as last seen; the status bar follows it."""
    connection: reactive[int] = reactive(0)
    """Counts (re)connections; screens reload their content when it changes."""
    adapter_event: reactive[AdapterEvent | None] = reactive(None, always_update=True)
    """The newest event from `/v1/adapters/events`."""
    persona_made: reactive[str | None] = reactive(None)
    """The persona this TUI created or imported last (the Data screen shows it)."""
    personas_version: reactive[int] = reactive(0)
    """Bumped when personas were created, changed or removed; screens refresh their lists."""

    def __init__(
        self,
        settings: TuiSettings,
        client: ApiClient,
        conversations: ConversationStore | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        """How this session was configured."""
        self.client = client
        """The only door to the server."""
        self.conversations = conversations or ConversationStore(conversations_dir())
        """Where chats are saved."""
        self.server: ServerProcess | None = None
        """The server child process, when the TUI started one."""
        self._gave_up_starting = False
        self.set_reactive(StudioApp.status, ServerStatus(client.base_url))

    def on_mount(self) -> None:
        """Open the chat and start watching the server."""
        self.switch_mode("chat")
        self.keep_connected()
        if self.settings.watch:
            self.follow_adapter_events()

    async def on_unmount(self) -> None:
        """Close the HTTP client and stop the server the TUI started, if any."""
        await self.client.aclose()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The built-in commands, New persona and Import card, then the screen's own actions."""
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "New persona", "Start a persona from the template or a copy", self.action_new_persona
        )
        yield SystemCommand(
            "Import card", "Import a character card file as a persona", self.action_import_card
        )
        seen: set[str] = {"app.new_persona", "app.import_card"}  # listed just above
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.system or binding.action in seen:
                continue
            seen.add(binding.action)
            node, action = active.node, binding.action

            async def run(node=node, action=action) -> None:  # type: ignore[no-untyped-def]
                await self.run_action(action, node)

            key = binding.key_display or binding.key
            help_text = f"{key} · {binding.tooltip}" if binding.tooltip else key
            yield SystemCommand(binding.description, help_text, run)

    @work(exclusive=True, group="server")
    async def keep_connected(self) -> None:
        """Poll `/health`; start a server when none answers; report losing and regaining it."""
        while True:
            health = await self.client.health()
            if health.state == "down" and self._may_start_server():
                self._start_server()
                continue
            if health.state == "down" and self.server is not None and self.server.exited:
                self.notify(
                    self.server.tail() or "it exited",
                    title="The server stopped",
                    severity="error",
                    timeout=15,
                )
                self.server = None
                self._gave_up_starting = True
            self._health_changed(health)
            if not self.settings.watch and health.state == "ready":
                return
            await asyncio.sleep(self.settings.poll_seconds if health.state == "ready" else 0.5)

    def _may_start_server(self) -> bool:
        return (
            self.server is None
            and not self._gave_up_starting
            and self.settings.start_server
            and is_local(self.client.base_url)
        )

    def _start_server(self) -> None:
        self.server = ServerProcess(serve_argv(self.settings), home_dir() / "logs" / "server.log")
        try:
            self.server.start()
        except OSError as exc:
            self.notify(str(exc), title="Could not start the server", severity="error")
            self._gave_up_starting = True
            return
        self.status = dataclasses.replace(self.status, started_server=True)
        self.notify(
            f"Starting the server at {self.client.base_url}; the model is loading…",
            title="persona serve",
        )

    def _health_changed(self, health: ServerHealth) -> None:
        before = self.status.health.state
        model = health.model or self.status.model
        self.status = dataclasses.replace(self.status, health=health, model=model)
        if health.state == "ready" and before != "ready":
            self.connection += 1
            self.refresh_adapters()
            if before == "down" and self.connection > 1:
                self.notify(f"Connected to {self.client.base_url} again.", title="Reconnected")
        elif health.state == "down" and before == "ready":
            self.notify(
                "Lost the connection to the server; retrying…",
                title="Disconnected",
                severity="warning",
            )

    def action_new_persona(self) -> None:
        """Ask for a name (and a persona to copy), then have the server create it."""
        self.open_new_persona()

    @work(exclusive=True, group="persona-form")
    async def open_new_persona(self) -> None:
        """Fetch the personas to copy from, then show the form."""
        try:
            personas = [p.id for p in await self.client.personas()]
        except ApiError:
            personas = []
        choice = await self.push_screen_wait(NewPersonaDialog(personas))
        if choice is None:
            return
        try:
            made = await self.client.create_persona(
                choice.name, choice.display_name, choice.copy_from
            )
        except ApiError as error:
            self.notify(error.message, title=error.title, severity="error", timeout=10)
            return
        self._made(made, "Created")

    def action_import_card(self) -> None:
        """Ask for a card file, then have the server import it as a persona."""
        self.open_import_card()

    @work(exclusive=True, group="persona-form")
    async def open_import_card(self) -> None:
        """Show the form, then send the card."""
        choice = await self.push_screen_wait(ImportCardDialog())
        if choice is None:
            return
        try:
            made = await self.client.import_card(choice.path, choice.name)
        except ApiError as error:
            self.notify(error.message, title=error.title, severity="error", timeout=10)
            return
        for note in made.notes:
            self.notify(note, title="Import note", severity="warning", timeout=10)
        self._made(made, "Imported")

    def _made(self, made: PersonaCreated, verb: str) -> None:
        self.notify(
            f"{made.folder}\nEdit persona.toml and the .jsonl files there; F5 checks them, "
            "F2 trains.",
            title=f"{verb} persona {made.id}",
            timeout=15,
        )
        self.persona_made = made.id
        self.personas_version += 1

    def _persona_event(self, event: AdapterEvent) -> None:
        if event.type == "persona_failed":
            self.notify(
                event.message, title=f"{event.persona}: card not loaded", severity="warning"
            )
        self.personas_version += 1

    @work(exclusive=True, group="adapters")
    async def refresh_adapters(self) -> None:
        """Fetch every persona's serving state for the status bar."""
        try:
            adapters = await self.client.adapters()
        except ApiError:
            return  # the health poll reports a lost server; nothing else to say here
        self.status = dataclasses.replace(self.status, adapters=tuple(adapters))

    @work(exclusive=True, group="events")
    async def follow_adapter_events(self) -> None:
        """Follow hot-reload events, reconnecting whenever the stream drops."""
        while True:
            if self.status.health.state == "ready":
                try:
                    async for event in self.client.adapter_events():
                        self.status = dataclasses.replace(self.status, last_event=event)
                        self.adapter_event = event
                        if event.type in ("persona", "persona_failed"):
                            self._persona_event(event)
                        else:
                            self.refresh_adapters()
                except ApiError:
                    pass
            await asyncio.sleep(1.0)


def make_app(
    settings: TuiSettings,
    client: ApiClient,
    conversations: ConversationStore | None = None,
) -> StudioApp:
    """Build the TUI around a server client (a real one, or a scripted fake in tests)."""
    return StudioApp(settings, client, conversations)
