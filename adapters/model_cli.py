"""`persona model prepare|info`: build the embedded base model and say what is in use."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `model` subcommands."""
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    prep = sub.add_parser("prepare", help="convert the embedded Gemma 3 270M GGUF into MLX form")
    prep.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    sub.add_parser("info", help="show the prepared model folder, its state and the BLAS in use")


def run(args: argparse.Namespace) -> int:
    """Run `persona model ...`."""
    from .base import PrepareError, check_prepared, embedded_dir, prepare_embedded
    from .blas import ensure_fast_blas, warn_if_slow

    if args.model_command == "info":
        status = ensure_fast_blas()
        folder = embedded_dir()
        problem = check_prepared(folder) if folder.exists() else "not prepared yet"
        print(f"embedded model: {folder}")
        print(f"state: {'ready' if problem is None else problem}")
        print(status.note)
        return 0
    warn_if_slow(ensure_fast_blas())
    try:
        result = prepare_embedded(
            force=args.force, log=lambda msg: print(f"  {msg}", file=sys.stderr)
        )
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verb = "already prepared" if result.cached else "prepared"
    print(f"{verb}: {result.path} ({result.seconds:.1f} s)")
    return 0
