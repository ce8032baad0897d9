"""What every screen shares: the screen names, the status bar, the footer, error reports, and
the persona picker's refresh."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Select

from ..api import ApiClient, ApiError
from ..widgets.nav_bar import NavBar
from ..widgets.status_bar import StatusBar
from ..wire import PersonaInfo

if TYPE_CHECKING:
    from ..host import StudioHost


def offer(select: Select[str], ids: Sequence[str], fallback: str | None) -> None:
    """Offer `ids` in `select`, keeping its choice when still offered, else choosing `fallback`."""
    current = select.value
    select.set_options([(i, i) for i in ids])
    choice = current if isinstance(current, str) and current in ids else fallback
    if choice:
        select.value = choice


class StudioScreen(Screen[None]):
    """A top-level screen of the studio (one app mode)."""

    MODE: ClassVar[str] = ""
    """The app mode this screen is shown in."""

    @property
    def studio(self) -> StudioHost:
        """The app, seen through what screens may use of it."""
        return cast("StudioHost", self.app)

    @property
    def api(self) -> ApiClient:
        """The server client."""
        return self.studio.client

    def compose(self) -> ComposeResult:
        """Screen names and status on top, the screen's own body, the footer below."""
        yield NavBar(self.MODE)
        yield StatusBar()
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets."""
        yield from ()

    def report(self, error: ApiError) -> None:
        """Show a failed request as a readable notification."""
        self.notify(error.message, title=error.title, severity="error", timeout=8)

    def on_mount(self) -> None:
        """Reload server-backed content every time the connection is (re)established."""
        self.watch(self.studio, "connection", self._reconnected, init=False)
        self.watch(self.studio, "personas_version", self._personas_changed, init=False)

    def _reconnected(self, _count: int) -> None:
        self.reload()

    def _personas_changed(self, _version: int) -> None:
        self.reload()

    def reload(self) -> None:
        """Fetch what this screen shows from the server (override in screens that need it)."""

    async def offer_personas(
        self, select: Select[str], keep: Callable[[PersonaInfo], bool] = lambda _: True
    ) -> list[PersonaInfo] | None:
        """Fetch the server's personas and offer those `keep` accepts in `select` (the current
        choice stays when still offered, else the first); None, reported, when the fetch fails."""
        try:
            found = [p for p in await self.api.personas() if keep(p)]
        except ApiError as error:
            self.report(error)
            return None
        offer(select, [p.id for p in found], found[0].id if found else None)
        return found
