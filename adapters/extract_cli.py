"""`persona extract-lora MODEL`: make a full or DoRA fine-tune's checkpoint servable as a LoRA."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_RANK = 64


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `extract-lora` arguments."""
    parser.add_argument(
        "model",
        help="a full or DoRA fine-tune checkpoint: persona@run (its best) or persona@run:step",
    )
    parser.add_argument(
        "--rank", type=int, default=DEFAULT_RANK, help=f"LoRA rank (default {DEFAULT_RANK})"
    )
    parser.add_argument("--label", help="label of the new run (default: lora<rank>)")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default="float32",
        help="how the factors are stored (float16 halves the file; default float32)",
    )
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="skip the validation loss of the result (it costs a pass over the validation rows)",
    )
    parser.add_argument("--adapters", type=Path, help="registry folder (default: the user's)")


def run(args: argparse.Namespace) -> int:
    """Run `persona extract-lora`: print the new model id, what was kept and the losses."""
    from adapters.blas import ensure_fast_blas, warn_if_slow

    warn_if_slow(ensure_fast_blas())
    from adapters.extract import ExtractError, extract_run
    from adapters.registry import Registry, RegistryError
    from data.home import adapters_dir

    registry = Registry(args.adapters or adapters_dir())
    try:
        result = extract_run(
            registry,
            args.model,
            args.rank,
            args.label,
            validate=not args.no_validate,
            dtype=args.dtype,
            log=lambda message: print(message, file=sys.stderr),
        )
    except (ExtractError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ext = result.extraction
    print(f"{result.model_id}: rank {ext.lora.rank} keeps {ext.kept:.1%} of the change")
    if ext.folded:
        print(f"  {len(ext.folded)} norms folded into the layers they feed")
    if ext.dropped:
        more = f" and {len(ext.dropped) - 3} more" if len(ext.dropped) > 3 else ""
        names = ", ".join(ext.dropped[:3]) + more
        print(f"  {len(ext.dropped)} changed tensors no LoRA can hold were dropped: {names}")
    if result.val_loss is not None:
        source = f"{result.source_val_loss:.3f}" if result.source_val_loss is not None else "?"
        print(f"  validation loss {result.val_loss:.3f} (the checkpoint it came from: {source})")
    elif not args.no_validate:
        print("  no validation loss: the run's data or its validation rows are gone")
    return 0
