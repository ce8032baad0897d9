"""`drafts.jsonl`: drafts waiting for review, and accepting, editing or rejecting them.

Drafts never go straight into training data. Accepting one appends it to the persona's dataset
in one atomic replace and then removes it from `drafts.jsonl` (an accept that was cut off
between the two is finished, not repeated, the next time). Every change to the drafts file
holds an exclusive lock on `drafts.lock`, so a running `persona data draft` and the server's
review routes never lose each other's writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from ...atomic import write_bytes
from ...check import record_problems
from ...dataset import Row, read_dataset
from ...jsonl import split_records
from ...records import ChatRecord, Message, encode_record, record_key
from .gaps import DraftTarget

DRAFTS = "drafts.jsonl"
LOCK = "drafts.lock"


class Draft(msgspec.Struct, frozen=True, omit_defaults=True):
    """A conversation a teacher wrote, waiting for review."""

    id: str
    messages: tuple[Message, ...]
    target: DraftTarget
    teacher: str
    """The teacher's model id."""
    created: float
    tags: tuple[str, ...] = ()

    @property
    def record(self) -> ChatRecord:
        """The draft as a dataset record."""
        return ChatRecord(self.messages, self.tags)


class DraftError(Exception):
    """A draft that does not exist or an edit that is not a valid record."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        """True when the draft id is unknown."""


def new_draft(
    messages: Sequence[Message], target: DraftTarget, teacher: str, tags: Sequence[str] = ()
) -> Draft:
    """A draft with a fresh id."""
    return Draft(
        f"d-{uuid.uuid4().hex[:10]}", tuple(messages), target, teacher, time.time(), tuple(tags)
    )


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the persona's drafts lock."""
    with (folder / LOCK).open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_drafts(folder: Path) -> list[Draft]:
    """Every pending draft, in the order written; unreadable lines are skipped."""
    path = folder / DRAFTS
    if not path.is_file():
        return []
    drafts = []
    for chunk in split_records(path.read_bytes()):
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            drafts.append(msgspec.json.decode(chunk, type=Draft))
    return drafts


def keep(folder: Path, messages: Sequence[Message], tags: Sequence[str], source: str) -> Draft:
    """A conversation from a chat, added as a draft for review; DraftError if not a record."""
    replies = [len(m.content.split()) for m in messages if m.role == "assistant"]
    turns = sum(m.role == "user" for m in messages)
    target = DraftTarget(
        (min(replies, default=0), max(replies, default=0)), tags[0] if tags else None
    )
    draft = new_draft(messages, msgspec.structs.replace(target, turns=max(turns, 1)), source, tags)
    problems = record_problems(Row("chat", 0, draft.record, ""))
    errors = [p.message for p in problems if p.severity == "error"]
    if errors:
        raise DraftError("; ".join(errors))
    add_draft(folder, draft)
    return draft


def add_draft(folder: Path, draft: Draft) -> None:
    """Append one draft to `drafts.jsonl` atomically."""
    with locked(folder):
        _write(folder, [*read_drafts(folder), draft])


def reject(folder: Path, draft_id: str) -> Draft:
    """Remove a draft; return it."""
    with locked(folder):
        drafts = read_drafts(folder)
        draft = _find(drafts, draft_id)
        _write(folder, [d for d in drafts if d.id != draft_id])
    return draft


def edit(
    folder: Path, draft_id: str, messages: Sequence[Message], tags: Sequence[str] | None
) -> Draft:
    """Replace a draft's conversation (and tags); DraftError listing every problem if invalid."""
    with locked(folder):
        drafts = read_drafts(folder)
        old = _find(drafts, draft_id)
        draft = msgspec.structs.replace(
            old, messages=tuple(messages), tags=old.tags if tags is None else tuple(tags)
        )
        problems = record_problems(Row("draft", 0, draft.record, ""))
        errors = [p.message for p in problems if p.severity == "error"]
        if errors:
            raise DraftError("; ".join(errors))
        _write(folder, [draft if d.id == draft_id else d for d in drafts])
    return draft


def accept(folder: Path, draft_id: str, dataset: Path) -> Draft:
    """Append a draft to `dataset` atomically, then remove it from the drafts."""
    with locked(folder):
        drafts = read_drafts(folder)
        draft = _find(drafts, draft_id)
        problems = record_problems(Row("draft", 0, draft.record, ""))
        errors = [p.message for p in problems if p.severity == "error"]
        if errors:
            raise DraftError("; ".join(errors))
        before = dataset.read_bytes() if dataset.is_file() else b""
        key = record_key(draft.record)
        present = dataset.is_file() and any(
            record_key(r.record) == key for r in read_dataset(dataset).rows
        )
        if not present:
            if before and not before.endswith(b"\n"):
                before += b"\n"
            write_bytes(dataset, before + encode_record(draft.record) + b"\n")
        _write(folder, [d for d in drafts if d.id != draft_id])
    return draft


def _find(drafts: Sequence[Draft], draft_id: str) -> Draft:
    found = next((d for d in drafts if d.id == draft_id), None)
    if found is None:
        raise DraftError(f"no draft {draft_id!r}", missing=True)
    return found


def _write(folder: Path, drafts: Sequence[Draft]) -> None:
    write_bytes(folder / DRAFTS, b"".join(msgspec.json.encode(d) + b"\n" for d in drafts))
