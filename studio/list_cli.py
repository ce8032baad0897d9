"""`persona list`: every persona found, its folder, its data files and its trained adapters."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `list` arguments."""
    parser.add_argument(
        "--personas",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of personas, searched after your own (repeatable)",
    )
    parser.add_argument("--adapters", type=Path, help="adapters folder (default: the home one)")


def run(args: argparse.Namespace) -> int:
    """Print one block per persona, then any folder that could not be read; exit 0."""
    from adapters.registry import Registry
    from data.home import adapters_dir
    from data.jsonl import count_records
    from data.personas import default_dirs, discover
    from data.scaffold import COPIED_FILES

    entries, problems = discover(default_dirs(args.personas))
    registry = Registry(args.adapters or adapters_dir())
    for entry in entries:
        print(f"{entry.name}  {entry.card.title}")
        print(f"  folder    {entry.folder}")
        files = [
            f"{name} ({count_records(entry.folder / name)})"
            for name in COPIED_FILES
            if (entry.folder / name).is_file()
        ]
        print(f"  data      {', '.join(files) or 'none'}")
        runs = []
        for run_name in registry.runs(entry.name):
            steps = [c.manifest.step for c in registry.checkpoints(entry.name, run_name)]
            if steps:
                runs.append(f"{run_name} (steps {', '.join(map(str, steps))})")
        print(f"  adapters  {'; '.join(runs) or 'none trained'}")
    for problem in problems:
        print(f"skipped: {problem}")
    return 0
