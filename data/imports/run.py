"""Import a source file into a persona's dataset: convert, check, drop duplicates, append.

Each converted record is checked on its own (roles, empty turns and, with a tokenizer, the
length limit and the template prefix) before anything is written; a record with an error is
left out and reported at its source `file:line`. The good records are appended to the
dataset in one atomic replace, and the data checker then runs on the whole result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from ..atomic import write_bytes
from ..card import PersonaCard
from ..check import CheckReport, check_dataset, record_problems, token_problems
from ..dataset import Row, read_dataset
from ..jsonl import JsonLine
from ..personas import append_file
from ..problem import Problem, error, warning
from ..records import ChatRecord, encode_record, record_key
from ..tokens import ChatTokenizer
from .formats import READERS, Converted, EntryError, Names, detect, finish
from .sillytavern import read_chat
from .source import read_entries


class ImportSummary(msgspec.Struct, frozen=True):
    """What an import read, kept, merged and skipped, and what the checker says of the result."""

    source: str
    format: str
    target: str
    entries: int
    """JSON objects read from the source (lines, array items or SillyTavern messages)."""
    conversations: int
    """Conversations converted from them."""
    appended: int
    merged_turns: int
    duplicates: int
    left_out: int
    """Conversations with an error, each reported at its source line."""
    problems: tuple[Problem, ...]
    """Source problems (file:line) and the checker's findings on the appended lines."""
    result_errors: int = 0
    result_warnings: int = 0


def import_file(
    source: Path,
    folder: Path,
    card: PersonaCard | None,
    fmt: str = "auto",
    tokenizer: ChatTokenizer | None = None,
    tags: Sequence[str] = (),
    names: Names | None = None,
    max_turns: int = 8,
) -> ImportSummary:
    """Convert `source` and append its good records to the persona in `folder`."""
    entries, problems = read_entries(source)
    file = str(source)
    chosen = detect(entries) if fmt == "auto" else fmt
    target = append_file(folder)
    if chosen is None:
        problems.append(
            error(
                file, 0, "cannot tell the format; pass --format openai|sharegpt|alpaca|sillytavern"
            )
        )
        return _summary(file, "unknown", target, len(entries), [], 0, 0, 0, problems)
    if names is None:
        names = Names(char=_card_names(card))
    converted, found = convert(chosen, entries, file, names, max_turns)
    problems += found
    problems.sort(key=lambda p: p.line)
    existing = read_dataset(target).rows if target.is_file() else ()
    seen = {record_key(r.record) for r in existing}
    kept: list[Row] = []
    left_out = duplicates = 0
    system_prompt = card.system_prompt if card else None
    for item in converted:
        messages = item.messages
        if system_prompt and messages[0].role == "system" and messages[0].content == system_prompt:
            messages = messages[1:]  # the persona's own prompt is added at training time
        record = ChatRecord(messages, tuple(dict.fromkeys((*item.tags, *tags))))
        row = Row(file, item.line, record, encode_record(record).decode())
        issues = record_problems(row)
        if tokenizer is not None and not any(p.severity == "error" for p in issues):
            issues += token_problems(row, tokenizer, card)
        problems += issues
        if any(p.severity == "error" for p in issues):
            left_out += 1
            continue
        key = record_key(record)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        kept.append(row)
    merged = sum(c.merged for c in converted)
    if kept:
        before = target.read_bytes() if target.is_file() else b""
        if before and not before.endswith(b"\n"):
            before += b"\n"
        first_new = before.count(b"\n") + 1
        write_bytes(target, before + b"".join(r.raw.encode() + b"\n" for r in kept))
        report = check_dataset([target], card, tokenizer)
        problems += [p for p in report.problems if p.line >= first_new]
        return _summary(
            file, chosen, target, len(entries), converted, len(kept), merged, duplicates,
            problems, left_out, report,
        )  # fmt: skip
    return _summary(
        file, chosen, target, len(entries), converted, 0, merged, duplicates, problems, left_out
    )


def _summary(
    file: str,
    fmt: str,
    target: Path,
    entries: int,
    converted: Sequence[object],
    appended: int,
    merged: int,
    duplicates: int,
    problems: list[Problem],
    left_out: int = 0,
    report: CheckReport | None = None,
) -> ImportSummary:
    return ImportSummary(
        source=file,
        format=fmt,
        target=str(target),
        entries=entries,
        conversations=len(converted),
        appended=appended,
        merged_turns=merged,
        duplicates=duplicates,
        left_out=left_out,
        problems=tuple(problems),
        result_errors=len(report.errors) if report else 0,
        result_warnings=len(report.warnings) if report else 0,
    )


def _card_names(card: PersonaCard | None) -> tuple[str, ...]:
    if card is None:
        return ()
    names = {
        card.name,
        card.display_name,
        card.display_name.split(" ")[0] if card.display_name else "",
    }
    return tuple(sorted(n for n in names if n))


def convert(
    fmt: str, entries: Sequence[JsonLine], file: str, names: Names, max_turns: int
) -> tuple[list[Converted], list[Problem]]:
    """Every conversation in the entries, and a problem for each entry or turn left out."""
    if fmt == "sillytavern":
        return read_chat(entries, file, names, max_turns)
    reader = READERS[fmt]
    found: list[Converted] = []
    problems: list[Problem] = []
    for entry in entries:
        try:
            turns, tags = reader(entry.value, names)
        except EntryError as exc:
            problems.append(error(file, entry.line, f"{fmt}: {exc}"))
            continue
        converted, notes = finish(turns, entry.line, tags)
        problems += [warning(file, entry.line, note) for note in notes]
        if converted is None:
            problems.append(error(file, entry.line, f"{fmt}: no user turn with a reply"))
        else:
            found.append(converted)
    return found, problems
