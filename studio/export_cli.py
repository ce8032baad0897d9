"""`persona export MODEL_ID --to FORMAT --out DIR`: take a trained persona to another engine.

Each format is one module under `adapters/export/` with `refusal(source)` and
`write(source, folder, options)`; this table is the whole list.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

FORMATS: dict[str, tuple[str, str]] = {
    "peft": ("adapters.export.peft", "Hugging Face PEFT LoRA adapter (vLLM, SGLang, LoRAX)"),
    "gguf": ("adapters.export.gguf_lora", "llama.cpp LoRA adapter GGUF for the embedded base"),
    "ollama": ("adapters.export.ollama", "folder for `ollama create`: base + LoRA GGUF, Modelfile"),
    "mlx": ("adapters.export.mlx_fused", "fused MLX model folder (mlx_lm.generate --model DIR)"),
    "gguf-full": ("adapters.export.gguf_full", "fused model as one GGUF (f16 or q8_0)"),
}
"""Format name -> (module, help)."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `export` arguments."""
    parser.add_argument("model_id", metavar="MODEL_ID", help="juni, juni@run-3, juni@run-3:200")
    parser.add_argument(
        "--to",
        dest="format",
        required=True,
        choices=sorted(FORMATS),
        help="; ".join(f"{name}: {text}" for name, (_, text) in FORMATS.items()),
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    parser.add_argument("--quant", choices=("f16", "q8_0"), default="f16",
                        help="tensor type of gguf-full (default f16)")  # fmt: skip
    parser.add_argument("--model", help="base model folder (default: the checkpoint's own base)")
    parser.add_argument("--adapters", type=Path, help="adapter registry folder")
    parser.add_argument(
        "--personas", type=Path, action="append", default=[], help="extra personas folder"
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    """Run `persona export`."""
    from adapters.export.source import ExportError, ExportOptions, resolve_source
    from adapters.export.stage import staged

    module = importlib.import_module(FORMATS[args.format][0])
    options = ExportOptions(quant=args.quant, model=args.model)
    start = time.perf_counter()
    try:
        source = resolve_source(args.model_id, options, args.adapters, tuple(args.personas))
        reason = module.refusal(source)
        if reason is not None:
            raise ExportError(f"cannot export {source.model_id} as {args.format}: {reason}")
        with staged(args.out, replace=args.force) as folder:
            module.write(source, folder, options)
    except ExportError as exc:
        print(f"persona export: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(
        f"exported {source.model_id} as {args.format} to {args.out} "
        f"({size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s)"
    )
    return 0
