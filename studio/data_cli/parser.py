"""`persona data check|stats|split|import|draft|pairs`: persona data on the command line.

Each PATH is a persona folder, a persona name, or a JSONL file; a file next to a `persona.toml`
is checked against that card. Files named `eval.jsonl` are read as eval suites.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.personas import PAIRS
from data.records import FAILURE_MODES

from .paths import UsageError, group_paths


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse reports anything else)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `check`, `stats`, `pairs` and `split` subactions."""
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
    pairs = sub.add_parser(
        "pairs", help="draft preference pairs from a model's failures on failure-mode records"
    )
    pairs.add_argument("persona", metavar="PERSONA", help="persona name or folder")
    pairs.add_argument(
        "--from", dest="model", required=True, metavar="MODEL_ID", help="the model to sample"
    )
    pairs.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    pairs.add_argument("--api-key", default=None, help="default: $PERSONA_API_KEY")
    pairs.add_argument("--samples", type=positive_int, default=2, help="replies sampled per record")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--concurrency", type=positive_int, default=4)
    pairs.add_argument(
        "--categories",
        default=",".join(FAILURE_MODES),
        help="failure modes to probe (comma-separated)",
    )
    pairs.add_argument("--out", type=Path, help=f"default: the persona's {PAIRS}")
    pairs.add_argument("--force", action="store_true", help="overwrite an existing output file")
    split = sub.add_parser("split", help="write train/valid(/test) splits without prompt leaks")
    split.add_argument("path", metavar="PATH", help="dataset.jsonl, or a persona folder or name")
    split.add_argument("--valid", type=float, help="validation share (default: the card's)")
    split.add_argument("--test", type=float, default=0.0, help="test share (default 0)")
    split.add_argument("--seed", type=int, help="shuffle seed (default: the card's)")
    split.add_argument("--out", type=Path, help="output folder (default: next to the input)")
    split.add_argument("--eval", type=Path, help="eval suite to check for contamination")
    _configure_import(sub)
    from .drafts import configure as configure_draft

    configure_draft(sub)
    # `persona data ACTION --help` opens with the same sentence `persona data --help` lists.
    for action in sub._choices_actions:
        command = sub.choices[action.dest]
        command.description = command.description or action.help


def _configure_import(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from data.imports.formats import FORMATS

    imp = sub.add_parser(
        "import", help="append a chat log or dataset (OpenAI, ShareGPT, Alpaca, SillyTavern)"
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="JSONL, or a JSON array")
    imp.add_argument("--to", required=True, metavar="PERSONA", help="persona name or folder")
    imp.add_argument("--format", choices=("auto", *FORMATS), default="auto")
    imp.add_argument("--tag", action="append", default=[], help="add this tag to every record")
    imp.add_argument(
        "--char", action="append", default=[], metavar="NAME", help="speaker name of the persona"
    )
    imp.add_argument(
        "--user", action="append", default=[], metavar="NAME", help="speaker name of the user"
    )
    imp.add_argument(
        "--max-turns", type=int, default=8, help="user turns per record cut from a long chat"
    )
    imp.add_argument(
        "--no-tokenizer", action="store_true", help="skip checks that need the tokenizer"
    )


def run(args: argparse.Namespace) -> int:
    """Run one data action; 0 when fine, 1 on errors in the data, 2 on bad usage."""
    from . import actions

    try:
        if args.data_command == "split":
            return actions.split(args)
        if args.data_command == "draft":
            from .drafts import run_draft

            return run_draft(args)
        if args.data_command == "import":
            from .imports import run_import

            return run_import(args)
        if args.data_command == "pairs":
            return actions.pairs(args)
        groups = group_paths(args.paths, args.card)
    except UsageError as exc:
        print(f"persona data: {exc}", file=sys.stderr)
        return 2
    if args.data_command == "check":
        return actions.check(groups, not args.no_tokenizer)
    return actions.stats(groups, not args.no_tokenizer, args.json, args.width)
