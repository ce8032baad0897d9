"""`persona export TARGET --to FORMAT --out DIR`: write a persona or a model out in another form.

Two tables. `FORMATS` holds formats of a persona itself: a function taking the target (a persona
name or folder) and the output folder, returning the files written and raising `ExportError`.
`MODEL_FORMATS` holds formats of a trained checkpoint, named by a served model id (`juni`,
`juni@run-3:200`): each is a module under `adapters/export/` with `refusal(source)` and
`write(source, folder, options)`, written into a staging folder renamed into place.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path


class ExportError(Exception):
    """An export that cannot be done; the message says why."""


def _card(target: str, out: Path, replace: bool) -> list[Path]:
    """A persona as Character Card V2 JSON, V3 JSON and a PNG carrying both."""
    from data.cards.export import export_card
    from data.cards.spec import CardError as CharacterCardError
    from data.personas import PersonaError, resolve

    try:
        entry = resolve(target)
    except PersonaError as exc:
        raise ExportError(str(exc)) from None
    try:
        return export_card(entry, out, replace)
    except CharacterCardError as exc:
        raise ExportError(str(exc)) from None


FORMATS: dict[str, Callable[[str, Path, bool], list[Path]]] = {"card": _card}
"""Export formats of a persona, by the name `--to` takes."""

MODEL_FORMATS: dict[str, tuple[str, str]] = {
    "peft": ("adapters.export.peft", "Hugging Face PEFT LoRA adapter (vLLM, SGLang, LoRAX)"),
    "gguf": ("adapters.export.gguf_lora", "llama.cpp LoRA adapter GGUF for the embedded base"),
    "ollama": ("adapters.export.ollama", "folder for `ollama create`: base + LoRA GGUF, Modelfile"),
    "mlx": ("adapters.export.mlx_fused", "fused MLX model folder (mlx_lm.generate --model DIR)"),
    "gguf-full": ("adapters.export.gguf_full", "fused model as one GGUF (f16 or q8_0)"),
    "web": ("studio.web_export", "static folder: the chat page on llama.cpp in WebAssembly"),
}
"""Export formats of a trained checkpoint: name -> (module, help)."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `export` arguments."""
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="persona name or folder (--to card), or a model id: juni, juni@run-3, juni@run-3:200",
    )
    parser.add_argument(
        "--to",
        required=True,
        choices=sorted(FORMATS | MODEL_FORMATS),
        help="card: Character Card V2/V3; "
        + "; ".join(f"{name}: {text}" for name, (_, text) in MODEL_FORMATS.items()),
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--quant", choices=("f16", "q8_0"), default="f16",
                        help="tensor type of gguf-full (default f16)")  # fmt: skip
    parser.add_argument("--model", help="base model folder (default: the checkpoint's own base)")
    parser.add_argument("--adapters", type=Path, help="adapter registry folder")
    parser.add_argument(
        "--personas",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of personas, searched after your own (repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="replace an earlier export in --out")


def run(args: argparse.Namespace) -> int:
    """Export and say what was written; 1 with a message when it cannot."""
    if args.to in MODEL_FORMATS:
        return _run_model(args)
    try:
        written = FORMATS[args.to](args.target, args.out, args.force)
    except (ExportError, OSError) as exc:
        print(f"persona export: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def _run_model(args: argparse.Namespace) -> int:
    from adapters.export.source import ExportError as SourceError
    from adapters.export.source import ExportOptions, resolve_source
    from adapters.export.stage import staged

    module = importlib.import_module(MODEL_FORMATS[args.to][0])
    options = ExportOptions(quant=args.quant, model=args.model)
    start = time.perf_counter()
    try:
        source = resolve_source(args.target, options, args.adapters, tuple(args.personas))
        reason = module.refusal(source)
        if reason is not None:
            raise SourceError(f"cannot export {source.model_id} as {args.to}: {reason}")
        with staged(args.out, replace=args.force) as folder:
            module.write(source, folder, options)
    except (SourceError, OSError) as exc:
        print(f"persona export: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(
        f"exported {source.model_id} as {args.to} to {args.out} "
        f"({size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s)"
    )
    return 0
