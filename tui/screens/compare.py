"""Compare: one prompt sent to two or three model ids, their replies streamed side by side."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, Markdown, Select
from textual.widgets.markdown import MarkdownStream

from ..api import ApiError
from ..meter import ReplyMeter, reply_caption
from ..widgets.reply_pane import ReplyPane
from ..wire import ChatMessage, SamplingOverrides
from .base import StudioScreen, offer

COLUMNS = 3


def default_choices(ids: list[str], personas: set[str]) -> list[str | None]:
    """Base model, a persona, and one of its pinned versions when the server offers them."""
    base = next((i for i in ids if i not in personas and "@" not in i), None)
    persona = next((i for i in ids if i in personas), None)
    pinned = next((i for i in ids if persona and i.startswith(f"{persona}@")), None)
    picks = [p for p in (base, persona, pinned) if p]
    return [*picks, *[None] * (COLUMNS - len(picks))][:COLUMNS]


class CompareScreen(StudioScreen):
    """Side-by-side replies to the same prompt."""

    MODE = "compare"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+r", "rerun", "Send again"),
        Binding("ctrl+g", "pick_models", "Models"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.last_prompt = ""
        """The prompt sent most recently."""

    def compose_body(self) -> ComposeResult:
        """Three model pickers, three reply columns, one prompt."""
        with Horizontal(id="compare-pickers"):
            for i in range(COLUMNS):
                yield Select[str]([], id=f"compare-model-{i}", prompt="(none)")
        with Horizontal(id="compare-columns"):
            for _ in range(COLUMNS):
                yield ReplyPane()
        yield Input(id="compare-prompt", placeholder="A prompt for every model, then Enter")

    @property
    def pickers(self) -> list[Select[str]]:
        """The model pickers, left to right."""
        return [self.query_one(f"#compare-model-{i}", Select) for i in range(COLUMNS)]

    @property
    def panes(self) -> list[ReplyPane]:
        """The reply columns, left to right."""
        return list(self.query(ReplyPane).results(ReplyPane))

    @property
    def prompt(self) -> Input:
        """Where the prompt is typed."""
        return self.query_one("#compare-prompt", Input)

    def on_mount(self) -> None:
        """Load the model list and put the cursor in the prompt."""
        self.prompt.focus()
        if self.studio.connection:
            self.reload()

    def reload(self) -> None:
        """Fetch the model list."""
        self.load_models()

    @work(exclusive=True, group="compare-models")
    async def load_models(self) -> None:
        """Offer every model id in each picker; preselect base, persona and a pinned version."""
        try:
            ids = [m.id for m in await self.api.models()]
            personas = {p.id for p in await self.api.personas()}
        except ApiError as error:
            self.report(error)
            return
        for picker, choice in zip(self.pickers, default_choices(ids, personas), strict=True):
            offer(picker, ids, choice)

    @on(Input.Submitted, "#compare-prompt")
    async def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.last_prompt = text
            await self._run(text)

    async def action_rerun(self) -> None:
        """Send the last prompt again."""
        if self.last_prompt:
            await self._run(self.last_prompt)

    async def _run(self, text: str) -> None:
        chosen = [p.value if isinstance(p.value, str) else None for p in self.pickers]
        if not any(chosen):
            self.notify("Choose at least one model above.", severity="warning")
            return
        for index, (model, pane) in enumerate(zip(chosen, self.panes, strict=True)):
            await pane.reset(model or "")
            if model:
                self.run_worker(
                    self._stream(pane, model, text), group=f"compare-{index}", exclusive=True
                )

    async def _stream(self, pane: ReplyPane, model: str, text: str) -> None:
        meter = ReplyMeter(time.monotonic())
        stream: MarkdownStream | None = None
        try:
            async for piece in self.api.chat(
                model, [ChatMessage("user", text)], SamplingOverrides()
            ):
                meter.add(piece, time.monotonic())
                if piece.text:
                    stream = stream or Markdown.get_stream(pane.markdown)
                    await stream.write(piece.text)
        except ApiError as error:
            self.report(error)
            pane.caption.update(f"failed: {error.message}")
            return
        except asyncio.CancelledError:
            pane.caption.update(self._caption(meter, "stopped"))
            raise
        finally:
            if stream is not None:
                await stream.stop()
        pane.caption.update(self._caption(meter, meter.finish_reason))

    @staticmethod
    def _caption(meter: ReplyMeter, finish: str | None) -> str:
        return reply_caption(meter.token_count, meter.tokens_per_sec(), meter.adapter, finish)

    def action_stop(self) -> None:
        """Stop every column."""
        for index in range(COLUMNS):
            self.workers.cancel_group(self, f"compare-{index}")

    def action_pick_models(self) -> None:
        """Focus the first model picker."""
        self.pickers[0].focus()
