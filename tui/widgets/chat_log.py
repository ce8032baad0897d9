"""The conversation as a scrolling column of messages, each with a caption under replies."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Markdown

ROLE_TITLES = {"user": "You", "assistant": "Reply", "system": "System"}


class MessageView(Vertical):
    """One message: who said it, the Markdown text, and (for replies) how it was made."""

    def __init__(self, role: str, text: str = "", caption: str = "", title: str = "") -> None:
        super().__init__(classes=f"message -{role}")
        self.role = role
        """`user` or `assistant`."""
        self._text = text
        self._caption = caption
        self._title = title or ROLE_TITLES.get(role, role)

    def compose(self) -> ComposeResult:
        """Role, body, caption."""
        yield Label(self._title, classes="role", markup=False)
        yield Markdown(self._text)
        yield Label(
            self._caption, classes="caption" if self._caption else "caption -empty", markup=False
        )

    @property
    def markdown(self) -> Markdown:
        """The body, which replies stream into."""
        return self.query_one(Markdown)

    @property
    def caption(self) -> Label:
        """The line under a reply: tokens, speed, adapter version."""
        return self.query_one(".caption", Label)

    def set_caption(self, text: str) -> None:
        """Replace the caption."""
        self.caption.update(text)
        self.caption.set_class(not text, "-empty")


class ChatLog(VerticalScroll):
    """Messages in order; stays scrolled to the newest while it grows."""

    def on_mount(self) -> None:
        """Follow the end of the conversation."""
        self.anchor()

    @property
    def messages(self) -> list[MessageView]:
        """The message views, oldest first."""
        return list(self.query_children(MessageView).results(MessageView))

    async def add(self, view: MessageView) -> MessageView:
        """Append a message and return it once mounted."""
        await self.mount(view)
        self.scroll_end(animate=False)
        return view

    async def truncate(self, keep: int) -> None:
        """Remove every message after the first `keep`."""
        extra = self.messages[keep:]
        if extra:
            await self.remove_children(extra)

    async def clear(self) -> None:
        """Remove every message."""
        await self.remove_children()
