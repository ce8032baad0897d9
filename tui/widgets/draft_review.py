"""The Review tab of the Data screen: drafts from `persona data draft`, one key to judge each.

`a` accepts the highlighted draft (the server appends it to the dataset), `r` rejects it, and `e`
opens it in a TextArea (`Ctrl+S` saves through the server's checker, `Esc` cancels). After
every accept the dataset's stats warnings are shown again. Everything goes through the API.
"""

from __future__ import annotations

import re
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Label, TextArea

from ..api import ApiClient, ApiError
from ..wire import DraftInfo, DraftReview, DraftTurn

_HEADING = re.compile(r"^### (user|assistant)\s*$", re.MULTILINE)


def as_text(turns: list[DraftTurn]) -> str:
    """A conversation for the editor: each turn under a `### user` or `### assistant` line."""
    return "\n\n".join(f"### {t.role}\n{t.content}" for t in turns)


def from_text(text: str) -> list[DraftTurn]:
    """The conversation in the editor's text; ValueError when there is no `### role` line."""
    parts = _HEADING.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise ValueError("start each turn with a line '### user' or '### assistant'")
    return [
        DraftTurn(role, body.strip()) for role, body in zip(parts[1::2], parts[2::2], strict=True)
    ]


class DraftReviewPane(Vertical):
    """Drafts of one persona, their conversation, and the keys to accept, edit or reject."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "accept", "Accept"),
        Binding("e", "edit", "Edit"),
        Binding("r", "reject", "Reject"),
        Binding("ctrl+s", "save", "Save edit", show=False),
        Binding("escape", "cancel", "Cancel edit", show=False),
    ]

    class Accepted(Message):
        """A draft went into the dataset; the dataset's stats changed."""

        def __init__(self, review: DraftReview) -> None:
            super().__init__()
            self.review = review

    def __init__(self, client: ApiClient) -> None:
        super().__init__(id="draft-review")
        self.client = client
        self.persona = ""
        """Whose drafts are shown."""
        self.drafts: list[DraftInfo] = []
        """The table's rows, in order."""

    def compose(self) -> ComposeResult:
        """Status, the drafts, the highlighted one, and the (hidden) editor."""
        yield Label("", id="draft-status", markup=False)
        yield DataTable(id="draft-table", cursor_type="row", zebra_stripes=True)
        yield Label("", id="draft-view", markup=False)
        yield TextArea(id="draft-editor")

    @property
    def table(self) -> DataTable[str]:
        """One row per draft."""
        return self.query_one("#draft-table", DataTable)

    @property
    def view(self) -> Label:
        """The highlighted draft's conversation."""
        return self.query_one("#draft-view", Label)

    @property
    def status(self) -> Label:
        """How many drafts wait, and the stats warnings after the last accept."""
        return self.query_one("#draft-status", Label)

    @property
    def editor(self) -> TextArea:
        """Where `e` opens the highlighted draft."""
        return self.query_one("#draft-editor", TextArea)

    def on_mount(self) -> None:
        """Set the table's columns."""
        self.table.add_columns("draft", "target", "first question")
        self.editor.display = False

    @property
    def current(self) -> DraftInfo | None:
        """The highlighted draft."""
        row = self.table.cursor_row
        return self.drafts[row] if 0 <= row < len(self.drafts) else None

    @work(exclusive=True, group="drafts")
    async def load(self, persona: str) -> None:
        """Fetch the persona's drafts."""
        self.persona = persona
        try:
            drafts = await self.client.drafts(persona)
        except ApiError as error:
            self.status.update(f"{error.title}: {error.message}")
            return
        self.show(drafts)

    def show(self, drafts: list[DraftInfo], note: str = "") -> None:
        """Fill the table (keeping the cursor near where it was)."""
        row = self.table.cursor_row
        self.drafts = drafts
        self.table.clear()
        for draft in drafts:
            first = next((t.content for t in draft.messages if t.role == "user"), "")
            self.table.add_row(draft.id, draft.target.describe(), first[:60])
        if drafts:
            self.table.move_cursor(row=min(max(row, 0), len(drafts) - 1))
        count = f"{len(drafts)} drafts waiting" if drafts else "No drafts: run `persona data draft`"
        self.status.update(f"{count}. a accept · e edit · r reject" + (f"\n{note}" if note else ""))
        self._show_current()

    @on(DataTable.RowHighlighted, "#draft-table")
    def _highlighted(self) -> None:
        self._show_current()

    def _show_current(self) -> None:
        draft = self.current
        if draft is None:
            self.view.update("")
            return
        turns = "\n\n".join(f"{t.role}: {t.content}" for t in draft.messages)
        self.view.update(f"target: {draft.target.describe()} · teacher: {draft.teacher}\n\n{turns}")

    def action_accept(self) -> None:
        """Append the highlighted draft to the dataset."""
        if self.current is not None and not self.editor.display:
            self.review(self.current.id, "accept")

    def action_reject(self) -> None:
        """Drop the highlighted draft."""
        if self.current is not None and not self.editor.display:
            self.review(self.current.id, "reject")

    @work(exclusive=True, group="draft-review")
    async def review(self, draft_id: str, verdict: str) -> None:
        """Send the verdict, then show the drafts (and the stats warnings) as they are now."""
        try:
            review = await self.client.review_draft(self.persona, draft_id, verdict)
            drafts = await self.client.drafts(self.persona)
        except ApiError as error:
            self.notify(error.message, title=error.title, severity="error")
            return
        note = ""
        if review.status == "accepted":
            warnings = "; ".join(review.warnings) or "no warnings"
            note = f"{review.dataset}: {review.records} records · stats: {warnings}"
            self.post_message(self.Accepted(review))
        self.show(drafts, note)

    def action_edit(self) -> None:
        """Open the highlighted draft in the editor."""
        draft = self.current
        if draft is None:
            return
        self.editor.text = as_text(draft.messages)
        self.editor.display = True
        self.editor.focus()

    def action_cancel(self) -> None:
        """Close the editor without saving."""
        if self.editor.display:
            self.editor.display = False
            self.table.focus()

    def action_save(self) -> None:
        """Save the edited conversation through the server."""
        draft = self.current
        if draft is None or not self.editor.display:
            return
        try:
            turns = from_text(self.editor.text)
        except ValueError as exc:
            self.notify(str(exc), title="Cannot read the edit", severity="error")
            return
        self.save(draft.id, turns)

    @work(exclusive=True, group="draft-review")
    async def save(self, draft_id: str, turns: list[DraftTurn]) -> None:
        """Replace the draft's conversation; the server's refusal is shown, the editor stays."""
        try:
            await self.client.edit_draft(self.persona, draft_id, turns)
            drafts = await self.client.drafts(self.persona)
        except ApiError as error:
            self.notify(error.message, title=error.title, severity="error")
            return
        self.editor.display = False
        self.table.focus()
        self.show(drafts, "draft saved")
