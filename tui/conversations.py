"""Saved chats: one JSON file per conversation, written atomically, listed newest first."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec

from data.atomic import write_bytes

from .wire import ChatMessage, SamplingOverrides

_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")


class ConversationError(Exception):
    """A saved conversation could not be read."""


class Turn(msgspec.Struct, frozen=True, omit_defaults=True):
    """One message of a conversation, with how the reply was made."""

    role: str
    content: str
    model: str | None = None
    """The model id that wrote an assistant turn."""
    adapter: str | None = None
    """The adapter version that wrote it (`persona_adapter`), None for the base model."""
    tokens: int | None = None
    tokens_per_sec: float | None = None
    finish_reason: str | None = None


class Conversation(msgspec.Struct, frozen=True, omit_defaults=True):
    """A whole chat: which model, which sampling overrides, and every turn so far."""

    id: str
    model: str
    created: float
    updated: float
    turns: tuple[Turn, ...] = ()
    overrides: SamplingOverrides = SamplingOverrides()
    title: str = ""

    def messages(self) -> list[ChatMessage]:
        """The turns as chat messages for the next request."""
        return [ChatMessage(t.role, t.content) for t in self.turns]

    def label(self) -> str:
        """A short name: the title, else the first user message."""
        if self.title:
            return self.title
        first = next((t.content for t in self.turns if t.role == "user"), "")
        first = " ".join(first.split())
        return (first[:48] + "…") if len(first) > 48 else (first or "(empty)")


def new_conversation(model: str, overrides: SamplingOverrides | None = None) -> Conversation:
    """An empty conversation with a fresh, sortable id."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return Conversation(
        id=f"{stamp}-{uuid.uuid4().hex[:6]}",
        model=model,
        created=now,
        updated=now,
        overrides=overrides or SamplingOverrides(),
    )


@dataclass(frozen=True)
class ConversationSummary:
    """What the "open conversation" list shows."""

    id: str
    label: str
    model: str
    updated: float
    turns: int


class ConversationStore:
    """Conversations as `<id>.json` files in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        """Where the files live."""

    def path(self, conversation_id: str) -> Path:
        """The file of one conversation; ids are checked so they never become other paths."""
        if not _ID.fullmatch(conversation_id):
            raise ConversationError(f"invalid conversation id {conversation_id!r}")
        return self.folder / f"{conversation_id}.json"

    def save(self, conversation: Conversation) -> Conversation:
        """Write it atomically, stamping the update time; return what was written."""
        stamped = msgspec.structs.replace(conversation, updated=time.time())
        payload = msgspec.json.format(msgspec.json.encode(stamped), indent=2)
        write_bytes(self.path(stamped.id), payload)
        return stamped

    def load(self, conversation_id: str) -> Conversation:
        """Read one conversation back."""
        path = self.path(conversation_id)
        try:
            return msgspec.json.decode(path.read_bytes(), type=Conversation)
        except OSError as exc:
            raise ConversationError(f"{path}: {exc.strerror}") from None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ConversationError(f"{path}: {exc}") from None

    def list(self) -> list[ConversationSummary]:
        """Every readable conversation, most recently updated first; broken files are skipped."""
        if not self.folder.is_dir():
            return []
        found = []
        for file in self.folder.glob("*.json"):
            try:
                conv = self.load(file.stem)
            except ConversationError:
                continue
            found.append(
                ConversationSummary(
                    conv.id, conv.label(), conv.model, conv.updated, len(conv.turns)
                )
            )
        return sorted(found, key=lambda s: s.updated, reverse=True)

    def delete(self, conversation_id: str) -> None:
        """Remove one conversation file."""
        self.path(conversation_id).unlink(missing_ok=True)
