"""The `persona data import FILE --to PERSONA` action, printing to the terminal."""

from __future__ import annotations

import argparse
import sys

from data.imports.formats import Names
from data.imports.run import import_file
from data.personas import PersonaEntry, PersonaError, resolve
from data.problem import listed


class ImportUsageError(Exception):
    """A persona that cannot be found or written to."""


def writable_persona(name_or_path: str) -> PersonaEntry:
    """The persona given by name or folder; never a read-only sample."""
    try:
        entry = resolve(name_or_path)
    except PersonaError as exc:
        raise ImportUsageError(str(exc)) from None
    if entry.read_only:
        raise ImportUsageError(
            f"{entry.name} is a read-only sample persona; copy it into your personas folder first"
        )
    return entry


def run_import(args: argparse.Namespace) -> int:
    """Import and print every problem and a summary; 1 when a source entry was left out."""
    from .paths import load_tokenizer

    try:
        entry = writable_persona(args.to)
    except ImportUsageError as exc:
        print(f"persona data import: {exc}", file=sys.stderr)
        return 2
    folder, card = entry.folder, entry.card
    tokenizer, note = (None, None)
    if not args.no_tokenizer:
        tokenizer, note = load_tokenizer(card.base_model)
    if note:
        print(f"note: {note}", file=sys.stderr)
    names = None
    if args.char or args.user:
        defaults = (card.name, card.display_name)
        names = Names(
            char=tuple(args.char) or tuple(n for n in defaults if n), user=tuple(args.user)
        )
    summary = import_file(
        args.file,
        folder,
        card,
        args.format,
        tokenizer,
        tuple(args.tag),
        names,
        args.max_turns,
    )
    for line in listed(summary.problems):
        print(line)
    source_errors = [
        p for p in summary.problems if p.severity == "error" and p.file == summary.source
    ]
    print(
        f"{summary.source} ({summary.format}): {summary.entries} entries, "
        f"{summary.conversations} conversations; {summary.appended} records appended to "
        f"{summary.target}; {summary.merged_turns} turns merged, {summary.duplicates} duplicates "
        f"skipped; {len(source_errors)} errors in the source ({summary.left_out} conversations "
        "left out by the checker)",
        file=sys.stderr,
    )
    if summary.appended:
        print(
            f"{summary.target}: checked after import: {summary.result_errors} errors, "
            f"{summary.result_warnings} warnings",
            file=sys.stderr,
        )
    return 1 if source_errors else 0
