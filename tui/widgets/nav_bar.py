"""The row of screen names at the top, with their keys; the current screen is highlighted."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widgets import Label

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("chat", "f1", "Chat"),
    ("train", "f2", "Train"),
    ("adapters", "f3", "Adapters"),
    ("compare", "f4", "Compare"),
    ("data", "f5", "Data"),
    ("eval", "f6", "Eval"),
)
"""(mode, key, title) of every screen, in order."""


class NavTab(Label):
    """One screen name; clicking it switches to that screen."""

    def __init__(self, mode: str, key: str, title: str, active: bool) -> None:
        super().__init__(f" {key.upper()} {title} ", classes="-active" if active else "")
        self.mode = mode
        """The app mode this tab opens."""

    async def on_click(self) -> None:
        """Switch screens with the mouse."""
        await self.app.run_action(f"switch_mode('{self.mode}')")


class NavBar(HorizontalGroup):
    """Every screen, its function key, and which one is open."""

    def __init__(self, active: str) -> None:
        super().__init__()
        self.active = active
        """The mode of the screen this bar sits on."""

    def compose(self) -> ComposeResult:
        """One tab per screen."""
        for mode, key, title in SCREENS:
            yield NavTab(mode, key, title, mode == self.active)
