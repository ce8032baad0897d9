"""Chat: pick a persona or pinned version, tune sampling, and talk; replies stream as Markdown."""

from __future__ import annotations

import time
from typing import ClassVar

import msgspec
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Markdown, Select
from textual.widgets.markdown import MarkdownStream

from ..api import ApiError
from ..conversations import Conversation, ConversationError, Turn, new_conversation
from ..meter import ReplyMeter, guard_marker, reply_caption
from ..widgets.chat_log import ChatLog, MessageView
from ..widgets.record_table import read_only_note, saved_note
from ..widgets.sampling_form import SamplingForm
from ..wire import AdapterEvent, Message, PersonaInfo
from .base import StudioScreen
from .conversation_picker import ConversationPicker
from .record_editor import RecordEditor, RecordTarget


def persona_of(model_id: str) -> str:
    """The persona part of a model id (`juni@run-1:20` -> `juni`)."""
    return model_id.partition("@")[0]


class ChatScreen(StudioScreen):
    """Multi-turn chat with one model id at a time."""

    MODE = "chat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+r", "regenerate", "Regenerate"),
        Binding("ctrl+l", "edit_last", "Edit last"),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+o", "open_chat", "Open chat"),
        Binding("ctrl+g", "pick_model", "Model"),
        Binding(
            "ctrl+s",
            "keep_exchange",
            "Keep",
            tooltip="Keep this exchange as a training example (the reply editable first)",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.conversation: Conversation = new_conversation("")
        """The chat on screen; saved after every reply."""
        self.personas: dict[str, PersonaInfo] = {}
        """Configured personas by id, as the server lists them."""
        self.generating = False
        """True while a reply streams in."""
        self.model_ids: list[str] = []
        """Every model id the server offers."""
        self._epoch = 0
        self._greeted = 0
        """How many chats opened with a greeting; the next takes the persona's next one."""
        # Bumped whenever the chat on screen is replaced or cut, so a reply that finishes
        # afterwards (a cancelled stream winding down) is dropped instead of appended.

    def compose_body(self) -> ComposeResult:
        """Model and sampling on the left, the conversation and prompt on the right."""
        with Horizontal(id="chat-main"):
            with Vertical(id="chat-side", classes="side-panel"):
                yield Label("Model (persona or pinned version)", classes="section-title")
                yield Select[str]([], id="chat-model", prompt="loading models…")
                yield Label("", id="persona-about", markup=False)
                yield SamplingForm()
            with Vertical(id="chat-body"):
                yield ChatLog(id="chat-log")
                yield Input(id="prompt", placeholder="Write a message, then Enter to send")

    @property
    def model_select(self) -> Select[str]:
        """The model picker."""
        return self.query_one("#chat-model", Select)

    @property
    def about(self) -> Label:
        """The persona's description and defaults."""
        return self.query_one("#persona-about", Label)

    @property
    def sampling(self) -> SamplingForm:
        """The sampling overrides."""
        return self.query_one(SamplingForm)

    @property
    def log_view(self) -> ChatLog:
        """The conversation."""
        return self.query_one(ChatLog)

    @property
    def prompt(self) -> Input:
        """Where the user types."""
        return self.query_one("#prompt", Input)

    def on_mount(self) -> None:
        """Put the cursor in the prompt; follow hot-reloads of the chosen persona."""
        self.prompt.focus()
        self.watch(self.studio, "adapter_event", self._adapter_event, init=False)
        if self.studio.connection:
            self.reload()

    def _adapter_event(self, event: AdapterEvent | None) -> None:
        # New checkpoints add pinnable model ids and may change the persona's active version.
        if event is not None and event.persona == persona_of(self.conversation.model):
            self.load_models()
            self.load_persona(self.conversation.model)

    def reload(self) -> None:
        """Fetch the model list."""
        self.load_models()

    @work(exclusive=True, group="models")
    async def load_models(self) -> None:
        """Fill the model picker from `/v1/models` and `/v1/personas`."""
        try:
            models = await self.api.models()
            personas = await self.api.personas()
        except ApiError as error:
            self.report(error)
            return
        self.personas = {p.id: p for p in personas}
        ids = [m.id for m in models]
        current = self.conversation.model
        if current not in ids:
            current = next((i for i in ids if i in self.personas), ids[0] if ids else "")
        self.model_ids = ids
        self.model_select.prompt = "choose a model"  # no stale "loading models…" entry
        self.model_select.set_options([(i, i) for i in ids])
        if current:
            self.model_select.value = current

    @on(Select.Changed, "#chat-model")
    def _model_chosen(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str):
            return
        self.conversation = msgspec.structs.replace(self.conversation, model=event.value)
        self.prompt.placeholder = f"Message {event.value}, then Enter to send"
        self.load_persona(event.value)
        if self.model_select.has_focus:
            self.prompt.focus()  # picked by hand (Ctrl+G): the next thing is to type

    @work(exclusive=True, group="persona")
    async def load_persona(self, model_id: str) -> None:
        """Show the persona's description and resolved sampling defaults."""
        persona_id = persona_of(model_id)
        if persona_id not in self.personas:
            self.about.update("The base model, without a persona: server defaults apply.")
            return
        try:
            info = await self.api.persona(persona_id)
        except ApiError as error:
            self.report(error)
            return
        adapter = info.active_adapter or "none (base model)"
        self.about.update(f"{info.title}: {info.description}\nActive adapter: {adapter}")
        self.sampling.show_defaults(info.defaults)
        if info.greetings and not self.conversation.turns:
            await self._greet(info)

    async def _greet(self, info: PersonaInfo) -> None:
        """Open the empty chat with one of the persona's greetings, each in turn."""
        greeting = info.greetings[self._greeted % len(info.greetings)]
        self._greeted += 1
        turn = Turn("assistant", greeting, model=self.conversation.model, finish_reason="greeting")
        self._append(turn)
        await self.log_view.add(
            MessageView("assistant", greeting, "greeting", self.conversation.model)
        )

    @on(SamplingForm.Changed)
    def _sampling_changed(self, event: SamplingForm.Changed) -> None:
        self.conversation = msgspec.structs.replace(self.conversation, overrides=event.overrides)

    @on(Input.Submitted, "#prompt")
    async def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.generating:
            self.notify("A reply is still streaming: Esc stops it.", severity="warning")
            return
        if not self.conversation.model:
            self.notify("No model to talk to yet: the server is not ready.", severity="warning")
            return
        self.prompt.value = ""
        self._append(Turn("user", text))
        await self.log_view.add(MessageView("user", text))
        await self._reply()

    def _append(self, turn: Turn) -> None:
        self.conversation = msgspec.structs.replace(
            self.conversation, turns=(*self.conversation.turns, turn)
        )

    async def _reply(self) -> None:
        view = await self.log_view.add(MessageView("assistant", title=self.conversation.model))
        self.generating = True
        self.generate(view, self._epoch)

    @work(exclusive=True, group="chat")
    async def generate(self, view: MessageView, epoch: int) -> None:
        """Stream one reply into `view`; Esc cancels this worker, which closes the request."""
        conversation = self.conversation
        meter = ReplyMeter(time.monotonic())
        stream: MarkdownStream | None = None
        text: list[str] = []
        failed = False
        try:
            async for piece in self.api.chat(
                conversation.model, conversation.messages(), conversation.overrides
            ):
                meter.add(piece, time.monotonic())
                if piece.text:
                    text.append(piece.text)
                    # Started on the first text: a stream stopped before its task ever ran
                    # would raise CancelledError into this worker.
                    stream = stream or Markdown.get_stream(view.markdown)
                    await stream.write(piece.text)
        except ApiError as error:
            failed = True
            self.report(error)
        finally:
            if stream is not None:
                await stream.stop()
            if epoch == self._epoch:
                self.generating = False
                finish = meter.finish_reason or ("error" if failed else "stopped")
                await self._finish(view, "".join(text), meter, finish)

    async def _finish(self, view: MessageView, text: str, meter: ReplyMeter, finish: str) -> None:
        if not text:
            await view.remove()
            self._save()
            return
        rate = meter.tokens_per_sec()
        turn = Turn(
            "assistant",
            text,
            model=self.conversation.model,
            adapter=meter.adapter,
            tokens=meter.token_count,
            tokens_per_sec=round(rate, 2) if rate else None,
            finish_reason=finish,
        )
        caption = reply_caption(turn.tokens, rate, turn.adapter, finish)
        marker = guard_marker(meter.guard)
        view.set_caption(f"{caption}\n{marker}" if marker else caption)
        self._append(turn)
        self._save()

    def _save(self) -> None:
        if not self.conversation.turns:
            return
        try:
            self.conversation = self.studio.conversations.save(self.conversation)
        except OSError as exc:
            self.notify(str(exc), title="Could not save the conversation", severity="error")

    def action_stop(self) -> None:
        """Stop the reply that is streaming."""
        self.workers.cancel_group(self, "chat")

    def _discard_reply(self) -> None:
        self.action_stop()
        self._epoch += 1
        self.generating = False

    async def action_regenerate(self) -> None:
        """Ask again for the last reply."""
        if self.generating:
            return
        turns = self.conversation.turns
        if turns and turns[-1].finish_reason == "greeting":
            self.notify("Nothing to regenerate yet.")
            return
        if turns and turns[-1].role == "assistant":
            turns = turns[:-1]
            await self.log_view.truncate(len(turns))
        if not turns:
            self.notify("Nothing to regenerate yet.")
            return
        self.conversation = msgspec.structs.replace(self.conversation, turns=turns)
        await self._reply()

    async def action_edit_last(self) -> None:
        """Put the last message back in the prompt and drop it (and its reply) from the chat."""
        self._discard_reply()
        turns = self.conversation.turns
        last_user = max((i for i, t in enumerate(turns) if t.role == "user"), default=None)
        if last_user is None:
            self.notify("No message to edit yet.")
            return
        self.prompt.value = turns[last_user].content
        self.conversation = msgspec.structs.replace(self.conversation, turns=turns[:last_user])
        await self.log_view.truncate(last_user)
        self.prompt.focus()

    async def action_new_chat(self) -> None:
        """Start a conversation with the same model and sampling (and a greeting, if it has one)."""
        self._discard_reply()
        self.conversation = new_conversation(self.conversation.model, self.sampling.overrides)
        await self.log_view.clear()
        self.prompt.focus()
        if persona_of(self.conversation.model) in self.personas:
            self.load_persona(self.conversation.model)

    def action_open_chat(self) -> None:
        """Choose a saved conversation to reopen."""
        self.app.push_screen(
            ConversationPicker(self.studio.conversations.list()), self._open_chosen
        )

    async def _open_chosen(self, conversation_id: str | None) -> None:
        if conversation_id is None:
            return
        try:
            conversation = self.studio.conversations.load(conversation_id)
        except ConversationError as exc:
            self.notify(str(exc), title="Could not open the conversation", severity="error")
            return
        await self.show_conversation(conversation)

    async def show_conversation(self, conversation: Conversation) -> None:
        """Replace the chat on screen with a saved one."""
        self._discard_reply()
        self.conversation = conversation
        self.sampling.set_overrides(conversation.overrides)
        await self.log_view.clear()
        for turn in conversation.turns:
            caption = "greeting" if turn.finish_reason == "greeting" else ""
            if turn.role == "assistant" and not caption:
                caption = reply_caption(
                    turn.tokens, turn.tokens_per_sec, turn.adapter, turn.finish_reason
                )
            title = (turn.model or "") if turn.role == "assistant" else ""
            await self.log_view.add(MessageView(turn.role, turn.content, caption, title))
        if conversation.model in self.model_ids:
            self.model_select.value = conversation.model
        self.prompt.focus()

    def action_keep_exchange(self) -> None:
        """Open the last question and reply in the record editor, to save as a training example."""
        turns = self.conversation.turns
        persona = persona_of(self.conversation.model)
        if len(turns) < 2 or turns[-1].role != "assistant" or turns[-2].role != "user":
            self.notify("Nothing to keep yet: wait for a reply first.", severity="warning")
            return
        if persona not in self.personas:
            self.notify("Pick a persona (Ctrl+G): examples belong to one.", severity="warning")
            return
        if self.generating:
            self.notify("A reply is still streaming: wait for it, or Esc.", severity="warning")
            return
        exchange = [Message(t.role, t.content) for t in turns[-2:]]
        self.keep(persona, exchange, self.conversation.model)

    @work(exclusive=True, group="chat-keep")
    async def keep(self, persona: str, exchange: list[Message], source: str) -> None:
        """Ask where the persona's records go, then open the editor on the exchange."""
        try:
            listing = await self.api.records(persona)
        except ApiError as error:
            self.report(error)
            return
        if not listing.writable:
            self.notify(read_only_note(persona), title="Read-only sample", severity="warning")
            return
        note = f"From the chat with {source}: edit the reply into the one to learn, then Ctrl+S."
        editor = RecordEditor(
            self.api, RecordTarget(persona, listing.file), exchange, [], listing.categories, note
        )
        saved = await self.app.push_screen_wait(editor)
        if saved is not None:
            self.notify(saved_note(saved), title=f"Kept for {persona}", timeout=10)

    def action_pick_model(self) -> None:
        """Focus the model picker."""
        self.model_select.focus()
