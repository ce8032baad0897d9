"""One column of the Compare screen: a model's reply, streamed, with its caption."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Markdown


class ReplyPane(VerticalScroll):
    """A Markdown reply and the line under it."""

    def compose(self) -> ComposeResult:
        """Title, body, caption."""
        yield Label("", classes="pane-title", markup=False)
        yield Markdown("")
        yield Label("", classes="caption", markup=False)

    @property
    def title_label(self) -> Label:
        """Which model this column shows."""
        return self.query_one(".pane-title", Label)

    @property
    def markdown(self) -> Markdown:
        """The reply."""
        return self.query_one(Markdown)

    @property
    def caption(self) -> Label:
        """Tokens, speed, adapter version."""
        return self.query_one(".caption", Label)

    async def reset(self, title: str) -> None:
        """Empty the column for a new reply from `title`."""
        self.title_label.update(title)
        self.caption.update("")
        await self.markdown.update("")
