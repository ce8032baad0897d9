"""The record editor: one TextArea per turn, category tags, and the server's checker on save.

Opened from the Data screen (a new record, or one of the dataset's) and from the Chat screen
(an exchange to keep). Saving sends the record to the server, which checks it and writes it by
atomic rename; a refusal lists its problems as `file:line` under the turns and the editor stays
open. It closes with what the server saved, or None when cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, SelectionList, TextArea

from ..api import ApiClient, ApiError
from ..wire import DatasetRecord, Message, RecordSaved

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class RecordTarget:
    """What the editor saves to: a persona, and the record it replaces (None adds one)."""

    persona: str
    file: str
    """The dataset file's name, shown in the title."""
    record: DatasetRecord | None = None


def next_role(roles: Sequence[str]) -> str:
    """The role a new turn takes: user after anything but a user turn, else assistant."""
    return "assistant" if roles and roles[-1] == "user" else "user"


def split_tags(text: str) -> list[str]:
    """Tags typed as text, separated by commas or spaces."""
    return [t for t in text.replace(",", " ").split() if t]


class TurnEditor(Vertical):
    """One turn: its role and its text."""

    DEFAULT_CSS = """
    TurnEditor { height: auto; margin: 0 0 1 0; }
    TurnEditor Select { width: 20; }
    TurnEditor TextArea { height: auto; min-height: 3; max-height: 12; }
    """

    def __init__(self, role: str, content: str) -> None:
        super().__init__(classes="turn")
        self._role = role if role in ROLES else "user"
        self._content = content

    def compose(self) -> ComposeResult:
        """The role picker above the text."""
        yield Select[str]([(r, r) for r in ROLES], value=self._role, allow_blank=False)
        yield TextArea(self._content, soft_wrap=True, show_line_numbers=False)

    @property
    def text_area(self) -> TextArea:
        """The turn's text."""
        return self.query_one(TextArea)

    @property
    def message(self) -> Message:
        """The turn as edited."""
        role = self.query_one(Select).value
        return Message(role if isinstance(role, str) else self._role, self.text_area.text)


class RecordEditor(ModalScreen[RecordSaved | None]):
    """Edit a record's turns and tags; Ctrl+S saves through the server, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+n", "add_turn", "Add turn"),
        Binding("ctrl+r", "remove_turn", "Remove turn"),
    ]

    def __init__(
        self,
        client: ApiClient,
        target: RecordTarget,
        messages: Sequence[Message],
        tags: Sequence[str],
        categories: Sequence[str],
        note: str = "",
    ) -> None:
        super().__init__()
        self.client = client
        self.target = target
        """Where the record is saved."""
        self._messages = list(messages) or [Message("user", ""), Message("assistant", "")]
        self._tags = list(tags)
        # The record's own tags first, so the ticked ones are in sight.
        self._categories = list(dict.fromkeys([*tags, *categories]))
        self._note = note

    def compose(self) -> ComposeResult:
        """Title, the turns, the tags, the checker's problems and the buttons."""
        record = self.target.record
        where = f"{record.file}:{record.line}" if record else f"new record → {self.target.file}"
        with Vertical(classes="dialog", id="record-editor"):
            yield Label(f"{self.target.persona} · {where}", classes="section-title", markup=False)
            if self._note:
                yield Label(self._note, classes="hint", markup=False)
            with VerticalScroll(id="record-turns"):
                for message in self._messages:
                    yield TurnEditor(message.role, message.content)
            yield Label("Tags (category of the case)", classes="section-title")
            yield SelectionList[str](
                *[(c, c, c in self._tags) for c in self._categories], id="record-tags"
            )
            yield Input(id="record-more-tags", placeholder="other tags, comma-separated")
            yield Label("", id="record-problems", markup=False)
            yield Label(
                "Ctrl+S save (checked) · Esc cancel · Ctrl+N add turn · Ctrl+R remove this turn",
                classes="hint",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", id="record-save", variant="primary")
                yield Button("Cancel", id="record-cancel")

    @property
    def turns(self) -> list[TurnEditor]:
        """The turn editors, in order."""
        return list(self.query(TurnEditor))

    @property
    def tag_list(self) -> SelectionList[str]:
        """The known categories, the record's own tags ticked."""
        return self.query_one("#record-tags", SelectionList)

    @property
    def more_tags(self) -> Input:
        """Tags that are not in the list."""
        return self.query_one("#record-more-tags", Input)

    @property
    def problems(self) -> Label:
        """The server's refusal, one problem per line."""
        return self.query_one("#record-problems", Label)

    def on_mount(self) -> None:
        """Start in the last turn, the reply, where the writing usually is."""
        self.turns[-1].text_area.focus()

    @property
    def messages(self) -> list[Message]:
        """Every turn as edited."""
        return [t.message for t in self.turns]

    @property
    def tags(self) -> list[str]:
        """The ticked tags, then the typed ones."""
        return [*self.tag_list.selected, *split_tags(self.more_tags.value)]

    async def action_add_turn(self) -> None:
        """Add a turn after the last one, with the role that comes next."""
        turn = TurnEditor(next_role([m.role for m in self.messages]), "")
        await self.query_one("#record-turns", VerticalScroll).mount(turn)
        turn.text_area.focus()
        turn.scroll_visible()

    async def action_remove_turn(self) -> None:
        """Remove the turn that has the focus (a record keeps at least one)."""
        turns = self.turns
        focused = next((t for t in turns if t.has_focus_within), None)
        if focused is None or len(turns) < 2:
            return
        index = turns.index(focused)
        await focused.remove()
        self.turns[min(index, len(turns) - 2)].text_area.focus()

    @on(Button.Pressed, "#record-save")
    def action_save(self) -> None:
        """Send the record to the server."""
        self.problems.update("Checking…")
        self.save(self.messages, self.tags)

    @on(Button.Pressed, "#record-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="record-save")
    async def save(self, messages: list[Message], tags: list[str]) -> None:
        """Add or replace the record; a refusal is shown here and the editor stays open."""
        target, record = self.target, self.target.record
        try:
            if record is None:
                saved = await self.client.add_record(target.persona, messages, tags)
            else:
                saved = await self.client.replace_record(
                    target.persona, record.file, record.line, record.hash, messages, tags
                )
        except ApiError as error:
            self.problems.update(f"{error.title}\n" + error.message.replace("; ", "\n"))
            return
        self.dismiss(saved)
