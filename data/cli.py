"""`persona data check|stats|split`: the data side of the product on the command line.

Each PATH is a persona folder, a persona name, or a JSONL file; a file next to a `persona.toml`
is checked against that card. Files named `eval.jsonl` are read as eval suites.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .targets import UsageError, resolve_targets


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `check`, `stats` and `split` subcommands."""
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="report every problem in datasets and eval suites")
    check.add_argument("paths", nargs="+", metavar="PATH")
    stats = sub.add_parser("stats", help="reply lengths, failure modes, formulas, duplicates")
    stats.add_argument("paths", nargs="+", metavar="PATH")
    stats.add_argument("--json", action="store_true", help="print the stats as JSON")
    stats.add_argument("--width", type=int, default=40, help="histogram bar width")
    for command in (check, stats):
        command.add_argument("--card", type=Path, help="persona.toml to check against")
        command.add_argument(
            "--no-tokenizer", action="store_true", help="skip checks that need the tokenizer"
        )
    split = sub.add_parser("split", help="write train/valid(/test) splits without prompt leaks")
    split.add_argument("path", metavar="PATH", help="dataset.jsonl, or a persona folder or name")
    split.add_argument("--valid", type=float, help="validation share (default: the card's)")
    split.add_argument("--test", type=float, default=0.0, help="test share (default 0)")
    split.add_argument("--seed", type=int, help="shuffle seed (default: the card's)")
    split.add_argument("--out", type=Path, help="output folder (default: next to the input)")
    split.add_argument("--eval", type=Path, help="eval suite to check for contamination")


def run(args: argparse.Namespace) -> int:
    """Run one data action; 0 when fine, 1 on errors in the data, 2 on bad usage."""
    from . import commands

    try:
        if args.data_command == "split":
            return commands.split(args)
        targets = resolve_targets(args.paths, args.card)
    except UsageError as exc:
        print(f"persona data: {exc}", file=sys.stderr)
        return 2
    if args.data_command == "check":
        return commands.check(targets, not args.no_tokenizer)
    return commands.stats(targets, not args.no_tokenizer, args.json, args.width)
