"""`persona data check|stats|split`: the data side of the product on the command line.

Each PATH is a persona folder, a persona name, or a JSONL file; a file next to a `persona.toml`
is checked against that card. Files named `eval.jsonl` are read as eval suites.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .card import CardError, PersonaCard, load_card
from .personas import (
    CARD,
    EVAL,
    PAIRS,
    PREFERENCE,
    TRAIN_FILES,
    VALID,
    find_persona,
    sample_personas_dir,
)
from .problem import Problem, error
from .records import FAILURE_MODES
from .tokens import ChatTokenizer


@dataclass
class Target:
    """The files of one persona (or of loose files) to work on together."""

    label: str
    card_path: Path | None
    datasets: list[Path] = field(default_factory=list)
    eval_file: Path | None = None


class UsageError(Exception):
    """A PATH that is neither a file, a folder nor a persona name."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `check`, `stats`, `pairs` and `split` subcommands."""
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
    pairs.add_argument("--samples", type=int, default=2, help="replies sampled per record")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--concurrency", type=int, default=4)
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


def run(args: argparse.Namespace) -> int:
    """Run one data action; 0 when fine, 1 on errors in the data, 2 on bad usage."""
    from . import commands

    try:
        if args.data_command == "split":
            return commands.split(args)
        if args.data_command == "pairs":
            return commands.pairs(args)
        targets = resolve_targets(args.paths, args.card)
    except UsageError as exc:
        print(f"persona data: {exc}", file=sys.stderr)
        return 2
    if args.data_command == "check":
        return commands.check(targets, not args.no_tokenizer)
    return commands.stats(targets, not args.no_tokenizer, args.json, args.width)


def resolve_targets(paths: Sequence[str], card: Path | None = None) -> list[Target]:
    """Group PATH arguments by the persona they belong to."""
    targets: dict[str, Target] = {}
    for text in paths:
        path = Path(text)
        if not path.exists():
            entry = find_persona(text) if "/" not in text else None
            if entry is None:
                raise UsageError(f"{text}: no such file, folder or persona")
            path = entry.folder
        if path.is_dir():
            target = targets.setdefault(str(path), Target(str(path), _card_in(path, card)))
            target.datasets += [p for n in (*TRAIN_FILES, VALID) if (p := path / n).is_file()]
            target.eval_file = path / EVAL if (path / EVAL).is_file() else None
            # Pairs repeat training prompts on purpose: check them apart from the SFT data.
            pairs = [p for n in (PREFERENCE, PAIRS) if (p := path / n).is_file()]
            if pairs:
                label = f"{path}{os.sep}{PREFERENCE}"
                targets.setdefault(label, Target(label, _card_in(path, card), pairs))
            if not target.datasets and target.eval_file is None and not pairs:
                raise UsageError(f"{path}: holds no {' / '.join(TRAIN_FILES)} or {EVAL}")
            continue
        folder = path.parent
        target = targets.setdefault(str(folder), Target(str(folder), _card_in(folder, card)))
        if path.name == EVAL:
            target.eval_file = path
        else:
            target.datasets.append(path)
    return list(targets.values())


def read_card(target: Target) -> tuple[PersonaCard | None, list[Problem]]:
    """The target's card, or the problems that stop it from loading."""
    if target.card_path is None:
        return None, []
    try:
        return load_card(target.card_path), []
    except CardError as exc:
        prefix = f"{target.card_path}: "
        return None, [
            error(str(target.card_path), 0, line.removeprefix(prefix))
            for line in str(exc).splitlines()
        ]


def load_tokenizer(base_model: str) -> tuple[ChatTokenizer | None, str | None]:
    """The base model's tokenizer, or None and the reason token checks are skipped."""
    # The command line is where layers meet: resolving a base model belongs to adapters.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers import AutoTokenizer

        from adapters.base import resolve_model

        tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(base_model)))
    except Exception as exc:  # no tokenizer only means fewer checks, never a crash
        return None, f"token checks skipped: cannot load the tokenizer of {base_model}: {exc}"
    if not getattr(tokenizer, "chat_template", None):
        return None, f"token checks skipped: {base_model} has no chat template"
    return tokenizer, None


def is_sample(folder: Path) -> bool:
    """Whether a folder is inside the read-only sample personas."""
    return folder.resolve().is_relative_to(sample_personas_dir().resolve())


def _card_in(folder: Path, override: Path | None) -> Path | None:
    if override is not None:
        return override
    path = folder / CARD
    return path if path.is_file() else None
