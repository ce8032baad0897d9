"""Dataset records: chat conversations and prompt/completion pairs, as msgspec Structs."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .similar import normalise

ROLES = ("system", "user", "assistant")
TURN_JOIN = "\n\n"
"""What joins two turns of one role merged into one, as the server joins leading system turns."""
FAILURE_MODES = ("idk", "clarify", "off_topic", "boundary")
"""Tags for the ways a persona should decline gracefully: doesn't know, asks, steers, refuses."""


class Message(msgspec.Struct, frozen=True):
    """One turn of a conversation."""

    role: str
    content: str


class ChatRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """`{"messages": [...], "tags": [...]}`: a conversation that ends with the reply to learn."""

    messages: tuple[Message, ...]
    tags: tuple[str, ...] = ()


class CompletionRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """`{"prompt": ..., "completion": ...}`: one prompt and the reply to learn."""

    prompt: str
    completion: str
    tags: tuple[str, ...] = ()


Record = ChatRecord | CompletionRecord

CHAT_KEYS = frozenset(ChatRecord.__struct_fields__)
COMPLETION_KEYS = frozenset(CompletionRecord.__struct_fields__)
MESSAGE_KEYS = frozenset(Message.__struct_fields__)


def as_messages(record: Record) -> tuple[Message, ...]:
    """The record as a conversation (a completion becomes one user and one assistant turn)."""
    if isinstance(record, ChatRecord):
        return record.messages
    return (Message("user", record.prompt), Message("assistant", record.completion))


def prompt_text(record: Record) -> str:
    """Everything the user says in the record, one turn per line: what duplicates are judged on."""
    return "\n".join(m.content for m in as_messages(record) if m.role == "user")


def replies(record: Record) -> list[str]:
    """The assistant turns of the record, in order."""
    return [m.content for m in as_messages(record) if m.role == "assistant"]


def user_turns(record: Record) -> int:
    """How many user turns the record has."""
    return sum(1 for m in as_messages(record) if m.role == "user")


def with_system(messages: Sequence[Message], system_prompt: str | None) -> list[Message]:
    """Prepend `system_prompt` unless the conversation already starts with a system turn."""
    if system_prompt and not (messages and messages[0].role == "system"):
        return [Message("system", system_prompt), *messages]
    return list(messages)


def record_key(record: Record) -> tuple[tuple[str, str], ...]:
    """What makes two records the same: every turn's role and normalised text."""
    return tuple((m.role, normalise(m.content)) for m in as_messages(record))


def merge_turns(messages: Sequence[Message]) -> tuple[list[Message], int]:
    """Join consecutive turns of one role with `TURN_JOIN`; return them and how many merged."""
    merged: list[Message] = []
    count = 0
    for message in messages:
        if merged and merged[-1].role == message.role:
            last = merged[-1]
            merged[-1] = Message(last.role, f"{last.content}{TURN_JOIN}{message.content}")
            count += 1
        else:
            merged.append(message)
    return merged, count


def turn_order_problems(messages: Sequence[Message], last: str) -> list[str]:
    """Every problem with roles and their order; `last` is the role the conversation must end on."""
    problems: list[str] = []
    previous: str | None = None
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role not in ROLES:
            problems.append(
                f"{where}.role: unknown role {message.role!r} (expected system, user or assistant)"
            )
            previous = message.role
            continue
        if message.role == "system":
            if index != 0:
                problems.append(f"{where}: a system message may only come first")
                continue  # judge the next turn against the one before this misplaced system turn
        elif previous in (None, "system"):
            if message.role != "user":
                problems.append(f"{where}: the first turn must be user, not {message.role}")
        elif message.role == previous:
            problems.append(
                f"{where}: two {message.role} turns in a row (user and assistant must alternate)"
            )
        previous = message.role
    roles = [m.role for m in messages]
    if not roles:
        problems.append("messages: the conversation is empty")
    elif last == "assistant" and "assistant" not in roles:
        problems.append("the conversation has no assistant turn")
    elif roles[-1] != last and roles[-1] in ROLES:
        article = "an" if last == "assistant" else "a"
        problems.append(f"the conversation must end with {article} {last} turn, not {roles[-1]}")
    return problems


def encode_record(record: Record) -> bytes:
    """One JSONL line (without the newline) for a record."""
    return msgspec.json.encode(record)
