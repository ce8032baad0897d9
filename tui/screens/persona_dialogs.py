"""Two small forms: start a new persona (or copy one), and import a character card file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

NAME_HINT = "lowercase letters, digits, - or _ (e.g. grumpy-parrot)"


@dataclass(frozen=True)
class NewPersona:
    """What the New persona form asks the server for."""

    name: str
    display_name: str | None
    copy_from: str | None


@dataclass(frozen=True)
class CardImport:
    """What the Import card form asks the server for."""

    path: Path
    name: str | None


class NewPersonaDialog(ModalScreen[NewPersona | None]):
    """Name, display name and an optional persona to copy; Enter creates, Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, personas: list[str]) -> None:
        super().__init__()
        self.personas = personas
        """Personas that may be copied."""

    def compose(self) -> ComposeResult:
        """The three fields and two buttons."""
        with Vertical(classes="dialog"):
            yield Label("New persona", classes="section-title")
            yield Label(f"Name: {NAME_HINT}", markup=False)
            yield Input(id="new-name", placeholder="grumpy-parrot")
            yield Label("Display name (optional)")
            yield Input(id="new-display", placeholder="made from the name")
            yield Label("Start from")
            yield Select[str]([(p, p) for p in self.personas], id="new-from", prompt="the template")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create", id="new-create", variant="primary")
                yield Button("Cancel", id="new-cancel")

    @property
    def name_input(self) -> Input:
        """The persona name."""
        return self.query_one("#new-name", Input)

    def on_mount(self) -> None:
        """Start typing the name at once."""
        self.name_input.focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#new-create")
    def _create(self) -> None:
        name = self.name_input.value.strip()
        if not name:
            self.notify("Give the persona a name first.", severity="warning")
            return
        display = self.query_one("#new-display", Input).value.strip() or None
        source = self.query_one("#new-from", Select).value
        self.dismiss(NewPersona(name, display, source if isinstance(source, str) else None))

    @on(Button.Pressed, "#new-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class ImportCardDialog(ModalScreen[CardImport | None]):
    """A card file's path and an optional persona name; Enter imports, Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Back")]

    def compose(self) -> ComposeResult:
        """The two fields and two buttons."""
        with Vertical(classes="dialog"):
            yield Label("Import a character card", classes="section-title")
            yield Label("Card file (V2/V3 .json, .png or .charx)")
            yield Input(id="import-path", placeholder="~/Downloads/card.png")
            yield Label(f"Persona name (optional): {NAME_HINT}", markup=False)
            yield Input(id="import-name", placeholder="made from the card's name")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Import", id="import-go", variant="primary")
                yield Button("Cancel", id="import-cancel")

    @property
    def path_input(self) -> Input:
        """The card file's path."""
        return self.query_one("#import-path", Input)

    def on_mount(self) -> None:
        """Start typing the path at once."""
        self.path_input.focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#import-go")
    def _import(self) -> None:
        text = self.path_input.value.strip()
        if not text:
            self.notify("Give the card file's path first.", severity="warning")
            return
        name = self.query_one("#import-name", Input).value.strip() or None
        self.dismiss(CardImport(Path(text).expanduser(), name))

    @on(Button.Pressed, "#import-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
