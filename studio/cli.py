"""The `persona` console command: one parser, with a subcommand per part of the product.

Each subcommand is a module with `configure(parser)` and `run(args) -> int`: those of data,
cards, eval and export in `studio` (so `data` never parses argv or prints), `model`, `train`,
`serve` and `tui` beside what they start. They import nothing heavy at import time, so
`persona --help` stays instant and the TUI never pulls in mlx.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from adapters.blas import ensure_fast_blas
from adapters.private_tmp import use_private_tmp

COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("new", "studio.new_cli", "start a new persona: card, example records and eval suite"),
    ("list", "studio.list_cli", "list personas with their folders, data files and adapters"),
    ("model", "adapters.model_cli", "prepare and inspect base models"),
    ("data", "studio.data_cli.parser", "check, measure, split, import and draft persona datasets"),
    (
        "import",
        "studio.import_cli",
        "import a character card (V2/V3 JSON, PNG, CHARX) as a persona",
    ),
    (
        "export",
        "studio.export_cli",
        "export a persona or model (card, peft, gguf, gguf-full, ollama, mlx)",
    ),
    ("train", "adapters.training.cli", "train a persona's adapter (LoRA, DoRA or full) on mlx-lm"),
    (
        "extract-lora",
        "adapters.extract_cli",
        "make a full or DoRA fine-tune servable: extract a LoRA from one of its checkpoints",
    ),
    ("eval", "studio.eval_cli", "score a persona's held-out eval suite on one or more models"),
    ("tune-sampling", "studio.tune_cli", "sweep sampling settings and recommend defaults"),
    ("serve", "server.cli", "serve the base model and every persona over the OpenAI API"),
    ("tui", "tui.cli", "open the persona studio terminal UI (what a bare `persona` runs)"),
)
"""(name, module, help) for each subcommand."""

DEFAULT_COMMAND = "tui"
"""What a bare `persona` runs."""


def build_parser() -> argparse.ArgumentParser:
    """The full `persona` parser, subcommands included."""
    parser = argparse.ArgumentParser(
        prog="persona",
        description="persona studio: give a language model a personality, then serve it.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.configure(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `persona` console script."""
    # Before anything can import mlx: a private kernel cache, and OpenBLAS for CPU matmuls.
    use_private_tmp()
    ensure_fast_blas()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        args_list = [DEFAULT_COMMAND]
    parser = build_parser()
    args = parser.parse_args(args_list)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
