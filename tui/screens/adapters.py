"""Adapters: every run and checkpoint of a persona; pin one, follow the newest, or roll back."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Select

from ..adapter_view import CheckpointLine, checkpoint_lines, last_error, rollback_target, summary
from ..api import ApiError
from ..wire import AdapterEvent, PersonaAdapters
from .base import StudioScreen


class AdaptersScreen(StudioScreen):
    """Serving state per persona, from `/v1/adapters`."""

    MODE = "adapters"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "activate", "Pin selected"),
        Binding("f", "follow", "Follow latest"),
        Binding("b", "rollback", "Roll back"),
        Binding("r", "refresh", "Refresh"),
        Binding("ctrl+g", "pick_persona", "Persona"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, PersonaAdapters] = {}
        """Every persona's adapter state, as last fetched."""
        self.lines: list[CheckpointLine] = []
        """The table's rows, in order."""

    def compose_body(self) -> ComposeResult:
        """Persona and serving summary on the left, checkpoints on the right."""
        with Horizontal(id="adapters-main"):
            with Vertical(classes="side-panel"):
                yield Label("Persona", classes="section-title")
                yield Select[str]([], id="adapters-persona", prompt="no personas yet")
                yield Label("", id="adapters-summary", markup=False)
                yield Label("", id="adapters-error", classes="error-box", markup=False)
                yield Label(
                    "Select a checkpoint, then A pins it. F goes back to following the newest "
                    "checkpoint; B pins the one before the active one.",
                    classes="hint",
                )
            with Vertical(id="adapters-body"):
                yield Label("Runs and checkpoints", classes="section-title")
                yield DataTable(id="adapters-table", cursor_type="row", zebra_stripes=True)

    @property
    def persona_select(self) -> Select[str]:
        """The persona picker."""
        return self.query_one("#adapters-persona", Select)

    @property
    def table(self) -> DataTable[str]:
        """Checkpoints of the chosen persona."""
        return self.query_one("#adapters-table", DataTable)

    @property
    def summary_label(self) -> Label:
        """Mode, active version, versions in memory."""
        return self.query_one("#adapters-summary", Label)

    @property
    def error_label(self) -> Label:
        """The last load error, shown plainly."""
        return self.query_one("#adapters-error", Label)

    @property
    def persona(self) -> str | None:
        """The chosen persona."""
        value = self.persona_select.value
        return value if isinstance(value, str) else None

    def on_mount(self) -> None:
        """Load the state, and reload it on every hot-reload event."""
        self.error_label.display = False
        self.watch(self.studio, "adapter_event", self._adapter_event, init=False)
        if self.studio.connection:
            self.reload()

    def _adapter_event(self, _event: AdapterEvent | None) -> None:
        self.reload()

    def reload(self) -> None:
        """Fetch `/v1/adapters`."""
        self.load()

    def action_refresh(self) -> None:
        """Fetch the state again."""
        self.load()

    @work(exclusive=True, group="adapters")
    async def load(self) -> None:
        """Fetch every persona's state and show the chosen one."""
        try:
            entries = await self.api.adapters()
        except ApiError as error:
            self.report(error)
            return
        self._show_entries(entries)

    def _show_entries(self, entries: list[PersonaAdapters]) -> None:
        self.entries = {e.persona: e for e in entries}
        chosen = self.persona
        names = list(self.entries)
        with self.prevent(Select.Changed):
            self.persona_select.set_options([(n, n) for n in names])
            if names:
                self.persona_select.value = chosen if chosen in self.entries else names[0]
        self._show()

    @on(Select.Changed, "#adapters-persona")
    def _persona_chosen(self) -> None:
        self._show()

    def _show(self) -> None:
        entry = self.entries.get(self.persona or "")
        table = self.table
        cursor = table.cursor_row
        table.clear(columns=True)
        if entry is None:
            self.lines = []
            self.summary_label.update("No trained adapters yet: train one on the Train screen.")
            self.error_label.display = False
            return
        columns, self.lines = checkpoint_lines(entry)
        table.add_columns(*columns)
        for line in self.lines:
            table.add_row(*line.cells, key=line.version)
        if self.lines:
            table.move_cursor(row=min(cursor, len(self.lines) - 1))
        self.summary_label.update(summary(entry))
        error = last_error(entry)
        self.error_label.update(error)
        self.error_label.display = bool(error)

    def _selected(self) -> CheckpointLine | None:
        if not self.lines:
            return None
        return self.lines[min(self.table.cursor_row, len(self.lines) - 1)]

    @on(DataTable.RowSelected, "#adapters-table")
    def _row_selected(self) -> None:
        self.action_activate()

    def action_activate(self) -> None:
        """Pin the selected checkpoint."""
        line, persona = self._selected(), self.persona
        if line is None or persona is None:
            self.notify("No checkpoint selected.")
            return
        self.change(persona, line.run, line.step)

    def action_follow(self) -> None:
        """Serve the newest checkpoint again, and keep following new ones."""
        if self.persona is not None:
            self.change(self.persona, None, None)

    def action_rollback(self) -> None:
        """Pin the checkpoint before the active one."""
        entry = self.entries.get(self.persona or "")
        target = rollback_target(entry) if entry else None
        if entry is None or target is None:
            self.notify("There is no earlier checkpoint to roll back to.")
            return
        self.change(entry.persona, *target)

    @work(exclusive=True, group="adapters-change")
    async def change(self, persona: str, run: str | None, step: int | None) -> None:
        """Pin (run and step given) or follow (both None), then show the new state."""
        try:
            if run is None:
                entry = await self.api.follow(persona)
            else:
                entry = await self.api.activate(persona, run, step)
        except ApiError as error:
            self.report(error)
            return
        self.entries[persona] = entry
        self._show()
        what = f"pinned to {entry.active}" if entry.mode == "pinned" else "following the newest"
        self.notify(f"{persona} is {what}.", title="Adapter changed")
        self.studio.refresh_adapters()

    def action_pick_persona(self) -> None:
        """Focus the persona picker."""
        self.persona_select.focus()
