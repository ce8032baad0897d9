"""Add, replace and delete single records of a persona's dataset file, checked before they land.

Every change rewrites the file through a temporary sibling that the checker reads first: a
record with errors is refused (its problems as `file:line`) and the file is left as it was;
otherwise the sibling is renamed over the file. Other lines are kept byte for byte, bad ones
included. A replace or delete names the line by its number and the hash of the text the client
read, so a line that changed in between is refused instead of overwritten. Changes hold the
persona's drafts lock, which accepting a draft also holds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from .atomic import staged_bytes
from .authoring.drafts.store import locked
from .card import PersonaCard
from .check import check_rows, duplicate_problems
from .dataset import Row, read_datasets
from .jsonl import split_records
from .problem import Problem
from .records import ChatRecord, Message, encode_record
from .tokens import ChatTokenizer

EditFailure = Literal["invalid", "missing", "changed"]


class EditError(Exception):
    """A change that was refused: an invalid record, an unknown line, or a line that changed."""

    def __init__(self, kind: EditFailure, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.kind: EditFailure = kind
        """Why: `invalid` (see `problems`), `missing` or `changed`."""
        self.problems = list(problems)
        """The checker's errors for an invalid record, as file:line."""


@dataclass(frozen=True)
class Saved:
    """Where a record landed and the checker's warnings about it (file named as given)."""

    line: int
    hash: str
    problems: list[Problem]
    records: int
    """Lines in the file after the change."""


def line_hash(text: str) -> str:
    """A short fingerprint of one line as written (16 hex digits), to detect a changed line."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def add_record(
    path: Path,
    record: ChatRecord,
    card: PersonaCard | None = None,
    tokenizer: ChatTokenizer | None = None,
    others: Sequence[Path] = (),
) -> Saved:
    """Append `record` to `path` (created if missing); EditError("invalid") lists its errors."""
    with locked(path.parent):
        lines = _lines(path)
        lines.append(encode_record(record))
        return _commit(path, lines, len(lines), card, tokenizer, others)


def replace_record(
    path: Path,
    line: int,
    expected: str,
    record: ChatRecord,
    card: PersonaCard | None = None,
    tokenizer: ChatTokenizer | None = None,
    others: Sequence[Path] = (),
) -> Saved:
    """Put `record` at `line` (1-based) if that line's hash is still `expected`."""
    with locked(path.parent):
        lines = _lines(path)
        _expect(path, lines, line, expected)
        lines[line - 1] = encode_record(record)
        return _commit(path, lines, line, card, tokenizer, others)


def delete_record(path: Path, line: int, expected: str) -> int:
    """Remove `line` (1-based) if its hash is still `expected`; return the lines left."""
    with locked(path.parent):
        lines = _lines(path)
        _expect(path, lines, line, expected)
        del lines[line - 1]
        with staged_bytes(path, _joined(lines)):
            pass
        return len(lines)


def chat_record(messages: Sequence[Message], tags: Sequence[str]) -> ChatRecord:
    """A record from edited turns and tags: blank tags dropped, repeats kept once, in order."""
    kept = [t.strip() for t in tags if t.strip()]
    return ChatRecord(tuple(messages), tuple(dict.fromkeys(kept)))


def _lines(path: Path) -> list[bytes]:
    return split_records(path.read_bytes()) if path.is_file() else []


def _joined(lines: list[bytes]) -> bytes:
    return b"".join(chunk + b"\n" for chunk in lines)


def _expect(path: Path, lines: list[bytes], line: int, expected: str) -> None:
    if not 1 <= line <= len(lines):
        raise EditError("missing", f"{path.name} has no line {line} (it has {len(lines)})")
    found = lines[line - 1].decode("utf-8", errors="replace")
    if line_hash(found) != expected:
        raise EditError(
            "changed",
            f"{path.name}:{line} changed since it was read; reload the records and try again",
        )


def _commit(
    path: Path,
    lines: list[bytes],
    line: int,
    card: PersonaCard | None,
    tokenizer: ChatTokenizer | None,
    others: Sequence[Path],
) -> Saved:
    with staged_bytes(path, _joined(lines)) as staged:
        # Messages may name files too ("same as <file>:3"): call each by its name in the folder.
        folder = f"{path.parent}{os.sep}"
        problems = [
            msgspec.structs.replace(
                p,
                file=path.name,
                message=p.message.replace(str(staged), path.name).replace(folder, ""),
            )
            for p in _problems_at(staged, line, card, tokenizer, others)
        ]
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            text = "; ".join(str(p) for p in errors)
            raise EditError("invalid", f"not a valid training record: {text}", errors)
    text = lines[line - 1].decode("utf-8")
    return Saved(line, line_hash(text), problems, len(lines))


def _problems_at(
    staged: Path,
    line: int,
    card: PersonaCard | None,
    tokenizer: ChatTokenizer | None,
    others: Sequence[Path],
) -> list[Problem]:
    """What the checker finds at `staged:line`, judged beside the rest of the dataset."""
    loaded = read_datasets([staged, *others])
    name = str(staged)
    problems = [p for p in loaded.problems if p.file == name and p.line == line]
    own: list[Row] = [r for r in loaded.rows if r.file == name and r.line == line]
    problems += check_rows(own, card, tokenizer)
    problems += [p for p in duplicate_problems(loaded.rows) if p.file == name and p.line == line]
    return problems
