"""`persona new NAME [--from PERSONA]`: start a persona folder, then print what to run next."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `new` arguments."""
    parser.add_argument("name", metavar="NAME", help="the persona's id: lowercase, digits, - or _")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="PERSONA",
        help="copy this persona's card and data (e.g. juni) instead of the template",
    )
    parser.add_argument("--display-name", help="the name people see (default: made from NAME)")
    parser.add_argument(
        "--personas",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of personas, searched after your own (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Create the folder; print its path and the next three commands, or why it cannot be made."""
    from data.home import personas_dir
    from data.personas import PersonaError, resolve
    from data.scaffold import ScaffoldError, create_persona

    source = None
    if args.source is not None:
        try:
            source = resolve(args.source, args.personas)
        except PersonaError as exc:
            print(f"persona new: {exc}", file=sys.stderr)
            return 2
    try:
        made = create_persona(args.name, personas_dir(), title=args.display_name, source=source)
    except ScaffoldError as exc:
        print(f"persona new: {exc}", file=sys.stderr)
        return 2
    origin = f"a copy of {source.name}" if source else "the template"
    print(f"created persona {made.name!r} from {origin} in {made.folder}")
    for file in made.files:
        print(f"  {made.folder / file}")
    print("next:")
    print(f"  1. edit {made.folder / 'persona.toml'} and the records in its .jsonl files")
    print(f"  2. persona data check {made.name}")
    print(f"  3. persona train {made.name}")
    return 0
