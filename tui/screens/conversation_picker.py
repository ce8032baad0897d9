"""A modal list of saved conversations; Enter opens one, Esc goes back."""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList
from textual.widgets.option_list import Option

from ..conversations import ConversationSummary


class ConversationPicker(ModalScreen[str | None]):
    """Returns the id of the chosen conversation, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, summaries: list[ConversationSummary]) -> None:
        super().__init__()
        self.summaries = summaries
        """Saved conversations, newest first."""

    def compose(self) -> ComposeResult:
        """A title and the list."""
        with Vertical(id="picker"):
            yield Label("Open a saved conversation", classes="section-title")
            if not self.summaries:
                yield Label("No saved conversations yet: chat first, then come back.")
            options = [
                Option(
                    f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(s.updated))}  "
                    f"{s.label}  ({s.model}, {s.turns} messages)",
                    id=s.id,
                )
                for s in self.summaries
            ]
            yield OptionList(*options, markup=False)
        yield Footer()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
