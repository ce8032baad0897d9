"""`persona export TARGET --to FORMAT --out DIR`: write a persona or a model out in another form.

Each format is one entry of `FORMATS`: a function taking the target (a persona name, a persona
folder, or a model id, as the format needs) and the output folder, returning the files written
and raising `ExportError` with a message for the user.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


class ExportError(Exception):
    """An export that cannot be done; the message says why."""


def _card(target: str, out: Path) -> list[Path]:
    """A persona as Character Card V2 JSON, V3 JSON and a PNG carrying both."""
    from data.card import CardError, load_card
    from data.cards.export import export_card
    from data.cards.spec import CardError as CharacterCardError
    from data.personas import PersonaEntry, find_persona

    folder = Path(target)
    try:
        if (folder / "persona.toml").is_file():
            card = load_card(folder)
            entry: PersonaEntry | None = PersonaEntry(card.name, folder, card)
        else:
            entry = find_persona(target)
    except CardError as exc:
        raise ExportError(str(exc)) from None
    if entry is None:
        raise ExportError(f"no persona named {target!r}")
    try:
        return export_card(entry, out)
    except CharacterCardError as exc:
        raise ExportError(str(exc)) from None


FORMATS: dict[str, Callable[[str, Path], list[Path]]] = {"card": _card}
"""Export formats by the name `--to` takes."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `export` arguments."""
    parser.add_argument("target", metavar="TARGET", help="persona name or folder (for --to card)")
    parser.add_argument("--to", required=True, choices=sorted(FORMATS), help="output format")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")


def run(args: argparse.Namespace) -> int:
    """Export and list the files written; 1 with a message when it cannot."""
    try:
        written = FORMATS[args.to](args.target, args.out)
    except (ExportError, OSError) as exc:
        print(f"persona export: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0
