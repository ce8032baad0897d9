"""The Records tab of the Data screen: a persona's dataset, one row per record, to add to, edit
and delete from (`a`, `e` or Enter, `d`). Everything goes through the server, which checks each
record before it writes; the samples shipped with the package are shown read-only."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message as TextualMessage
from textual.widgets import DataTable, Label

from ..api import ApiClient, ApiError
from ..screens.confirm import ConfirmDialog
from ..screens.record_editor import RecordEditor, RecordTarget
from ..wire import DatasetRecord, RecordList, RecordSaved


def read_only_note(persona: str) -> str:
    """What to do when the persona's data cannot be changed here."""
    return (
        f"{persona} is a sample shipped with persona studio: its records are read-only. "
        f"Copy it to write your own: `persona new NAME --from {persona}` "
        "(or New persona, Ctrl+N, starting from it)."
    )


def first(record: DatasetRecord, role: str) -> str:
    """The record's first turn of `role`, on one line."""
    text = next((m.content for m in record.messages if m.role == role), "")
    return " ".join(text.split())


def saved_note(saved: RecordSaved) -> str:
    """Where the record went, and the checker's warnings about it as file:line."""
    lines = [f"{saved.file}:{saved.line} saved ({saved.records} records)."]
    lines += [str(p) for p in saved.problems]
    return "\n".join(lines)


class RecordsPane(Vertical):
    """One persona's records, with the keys to add, edit and delete them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
    ]

    class Changed(TextualMessage):
        """A record was added, changed or deleted: the dataset's checks and stats are stale."""

    def __init__(self, client: ApiClient) -> None:
        super().__init__(id="records")
        self.client = client
        self.persona = ""
        """Whose records are shown."""
        self.listing: RecordList | None = None
        """The server's list, as last fetched."""

    def compose(self) -> ComposeResult:
        """Status, the records, the highlighted one in full."""
        yield Label("", id="records-status", markup=False)
        yield DataTable(id="records-table", cursor_type="row", zebra_stripes=True)
        yield Label("", id="records-view", markup=False)

    @property
    def table(self) -> DataTable[str]:
        """One row per record."""
        return self.query_one("#records-table", DataTable)

    @property
    def status(self) -> Label:
        """How many records, and whether they may be changed."""
        return self.query_one("#records-status", Label)

    @property
    def view(self) -> Label:
        """The highlighted record's conversation."""
        return self.query_one("#records-view", Label)

    @property
    def records(self) -> list[DatasetRecord]:
        """The table's rows, in order."""
        return self.listing.data if self.listing else []

    @property
    def current(self) -> DatasetRecord | None:
        """The highlighted record."""
        row, records = self.table.cursor_row, self.records
        return records[row] if 0 <= row < len(records) else None

    def on_mount(self) -> None:
        """Set the table's columns."""
        self.table.add_columns("where", "tags", "user", "reply")

    @work(exclusive=True, group="records")
    async def load(self, persona: str, line: tuple[str, int] | None = None) -> None:
        """Fetch the persona's records; put the cursor on `line` (file, line) when given."""
        self.persona = persona
        try:
            listing = await self.client.records(persona)
        except ApiError as error:
            self.status.update(f"{error.title}: {error.message}")
            return
        self.show(listing, line)

    def show(self, listing: RecordList, line: tuple[str, int] | None = None) -> None:
        """Fill the table, keeping the cursor where it was (or on `line`)."""
        row = self.table.cursor_row
        self.listing = listing
        self.table.clear()
        for record in listing.data:
            self.table.add_row(
                f"{record.file}:{record.line}",
                ", ".join(record.tags),
                first(record, "user")[:40],
                first(record, "assistant")[:60],
            )
        if line is not None:
            where = [(r.file, r.line) for r in listing.data]
            row = where.index(line) if line in where else row
        if listing.data:
            self.table.move_cursor(row=min(max(row, 0), len(listing.data) - 1))
        count = f"{len(listing.data)} record{'' if len(listing.data) == 1 else 's'}"
        unreadable = f" · {len(listing.problems)} unreadable lines" if listing.problems else ""
        keys = "a add · e edit · d delete" if listing.writable else read_only_note(self.persona)
        self.status.update(f"{count}{unreadable}. {keys}")
        self._show_current()

    @on(DataTable.RowHighlighted, "#records-table")
    def _highlighted(self) -> None:
        self._show_current()

    @on(DataTable.RowSelected, "#records-table")
    def _selected(self) -> None:
        self.action_edit()

    def _show_current(self) -> None:
        record = self.current
        if record is None:
            self.view.update("")
            return
        turns = "\n\n".join(f"{m.role}: {m.content}" for m in record.messages)
        tags = ", ".join(record.tags) or "none"
        self.view.update(f"{record.file}:{record.line} · tags: {tags}\n\n{turns}")

    def _may_change(self) -> bool:
        if self.listing is None:
            return False
        if not self.listing.writable:
            self.notify(read_only_note(self.persona), title="Read-only sample", severity="warning")
            return False
        return True

    def action_add(self) -> None:
        """Open the editor on a new record."""
        if self._may_change() and self.listing is not None:
            target = RecordTarget(self.persona, self.listing.file)
            editor = RecordEditor(self.client, target, [], [], self.listing.categories)
            self.app.push_screen(editor, self._saved)

    def action_edit(self) -> None:
        """Open the highlighted record in the editor."""
        record = self.current
        if record is None or not self._may_change() or self.listing is None:
            return
        if record.kind == "preference":
            self.notify(
                "A preference pair has two replies; edit it in the file itself.",
                severity="warning",
            )
            return
        note = (
            "A prompt/completion record; saving writes it back as a conversation."
            if record.kind == "completion"
            else ""
        )
        target = RecordTarget(self.persona, record.file, record)
        editor = RecordEditor(
            self.client, target, record.messages, record.tags, self.listing.categories, note
        )
        self.app.push_screen(editor, self._saved)

    def _saved(self, saved: RecordSaved | None) -> None:
        if saved is None:
            return
        warned = any(p.severity == "warning" for p in saved.problems)
        self.notify(
            saved_note(saved),
            title="Saved with warnings" if warned else "Saved",
            severity="warning" if warned else "information",
            timeout=10,
        )
        self.post_message(self.Changed())
        self.load(self.persona, (saved.file, saved.line))
        self.table.focus()

    def action_delete(self) -> None:
        """Ask, then delete the highlighted record."""
        record = self.current
        if record is None or not self._may_change():
            return
        question = f"Delete {record.file}:{record.line}?"
        detail = f"user: {first(record, 'user')[:70]}\nreply: {first(record, 'assistant')[:70]}"

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete(record)

        self.app.push_screen(ConfirmDialog(question, detail), answered)

    @work(exclusive=True, group="records-delete")
    async def delete(self, record: DatasetRecord) -> None:
        """Delete the record on the server, then list the records again."""
        try:
            gone = await self.client.delete_record(
                self.persona, record.file, record.line, record.hash
            )
        except ApiError as error:
            self.notify(error.message, title=error.title, severity="error", timeout=10)
            return
        self.notify(f"{gone.file}:{gone.line} deleted ({gone.records} records left).")
        self.post_message(self.Changed())
        self.load(self.persona)
