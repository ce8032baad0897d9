"""The line under the screen names: server health, URL, model, active adapters, last event."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widgets import Label

from ..status import ServerStatus, describe_health, describe_status


class StatusBar(HorizontalGroup):
    """Follows the app's `status` reactive."""

    def compose(self) -> ComposeResult:
        """A health badge and a line of detail."""
        yield Label("", id="health-badge", markup=False)
        yield Label("", id="status-detail", markup=False)

    @property
    def badge(self) -> Label:
        """The coloured health badge."""
        return self.query_one("#health-badge", Label)

    @property
    def detail(self) -> Label:
        """The rest of the line."""
        return self.query_one("#status-detail", Label)

    def on_mount(self) -> None:
        """Repaint whenever the app's view of the server changes."""
        self.watch(self.app, "status", self.show, init=True)

    def show(self, status: ServerStatus) -> None:
        """Paint one status."""
        text, css = describe_health(status)
        self.badge.update(text)
        self.badge.set_classes(css)
        self.detail.update(describe_status(status))
