"""`persona import FILE [--name NAME]`: a character card (JSON, PNG or CHARX) as a new persona."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `import` arguments."""
    parser.add_argument("file", type=Path, metavar="FILE", help="card .json, .png or .charx")
    parser.add_argument("--name", help="persona name (default: made from the card's name)")
    parser.add_argument(
        "--user", default="User", help="what {{user}} becomes in the card's text (default: User)"
    )


def run(args: argparse.Namespace) -> int:
    """Import the card; print what was made, or the error (nothing is written then)."""
    from data.cards.folder import write_persona
    from data.cards.persona import to_persona
    from data.cards.read import read_card_file
    from data.cards.spec import CardError
    from data.home import personas_dir

    try:
        source = read_card_file(args.file)
        imported = to_persona(source.card, args.name, args.user)
        folder = write_persona(imported, source, personas_dir())
    except CardError as exc:
        print(f"persona import: {exc}", file=sys.stderr)
        print("persona import: nothing was written", file=sys.stderr)
        return 1
    card = imported.card
    for note in imported.notes:
        print(f"{args.file}: note: {note}", file=sys.stderr)
    print(f"imported {card.display_name!r} ({source.form}) as persona {card.name!r} in {folder}")
    print(
        f"  system prompt {len(card.system_prompt.split())} words, "
        f"{len(card.greetings)} greetings, {len(imported.records)} example records"
        + (", post-history instructions" if card.post_history_instructions else "")
    )
    return 0
