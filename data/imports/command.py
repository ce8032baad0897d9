"""The `persona data import FILE --to PERSONA` action, printing to the terminal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..card import CardError, PersonaCard, load_card
from ..personas import find_persona
from ..problem import listed
from .formats import Names
from .run import import_file


class ImportUsageError(Exception):
    """A persona that cannot be found or written to."""


def persona_folder(name_or_path: str) -> tuple[Path, PersonaCard]:
    """The folder and card of a persona given by name or folder; never a read-only sample."""
    from ..targets import is_sample

    path = Path(name_or_path)
    try:
        if (path / "persona.toml").is_file():
            folder, card = path, load_card(path)
        else:
            entry = find_persona(name_or_path) if "/" not in name_or_path else None
            if entry is None:
                raise ImportUsageError(f"{name_or_path}: no such persona or persona folder")
            folder, card = entry.folder, entry.card
    except CardError as exc:
        raise ImportUsageError(str(exc)) from None
    if is_sample(folder):
        raise ImportUsageError(
            f"{card.name} is a read-only sample persona; copy it into your personas folder first"
        )
    return folder, card


def run_import(args: argparse.Namespace) -> int:
    """Import and print every problem and a summary; 1 when a source entry was left out."""
    from ..targets import load_tokenizer

    try:
        folder, card = persona_folder(args.to)
    except ImportUsageError as exc:
        print(f"persona data import: {exc}", file=sys.stderr)
        return 2
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
