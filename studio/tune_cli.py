"""`persona tune-sampling PERSONA`: sweep sampling settings through the API and rank them."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from .persona_files import PersonaFiles, load_persona_files


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `tune-sampling` options."""
    parser.add_argument("persona", help="persona name (or a persona folder)")
    parser.add_argument("--grid", type=Path, help="a TOML file of lists per sampling field")
    parser.add_argument("--temperature", type=_floats, metavar="A,B,..")
    parser.add_argument("--top-p", type=_floats, metavar="A,B,..")
    parser.add_argument("--min-p", type=_floats, metavar="A,B,..")
    parser.add_argument("--top-k", type=_ints, metavar="A,B,..")
    parser.add_argument("--min-tokens", type=_ints, metavar="A,B,..")
    parser.add_argument("--repetition-penalty", type=_floats, metavar="A,B,..")
    parser.add_argument("--cases", type=int, default=12, help="eval prompts per point (0 = all)")
    parser.add_argument("--model", help="model id to sweep (default: the persona)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--write", action="store_true", help="write the winner into the card")
    parser.add_argument(
        "--personas",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of personas, searched after your own (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the sweep and print the ranking."""
    import msgspec

    from data.eval.tune import Grid, parse_grid, points, ranked

    try:
        files = load_persona_files(args.persona, args.personas)
        grid = parse_grid(args.grid.read_bytes()) if args.grid else Grid()
    except (LookupError, OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    flags = {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "min_p": args.min_p,
        "top_k": args.top_k,
        "min_tokens": args.min_tokens,
        "repetition_penalty": args.repetition_penalty,
    }
    grid = msgspec.structs.replace(grid, **{k: v for k, v in flags.items() if v is not None})
    if not files.cases:
        print(
            f"error: {files.name} has no eval suite (eval.jsonl) to score against", file=sys.stderr
        )
        return 1
    key = args.api_key or os.environ.get("PERSONA_API_KEY") or "not-needed"
    results = asyncio.run(sweep(args, files, points(grid), key))
    if not results:
        return 1
    order = ranked(results)
    names = list(order[0].values)
    header = [*names, "score", "complete", "in-range", "loops", "voice", "criteria"]
    print("  ".join(f"{h:>10}" for h in header))
    for p in order:
        cells = [
            *(p.values[n] for n in names),
            p.score,
            p.completion,
            p.length_in_range,
            p.looping,
            p.voice,
            p.criteria,
        ]
        print("  ".join(f"{c:>10.3g}" if isinstance(c, float) else f"{c:>10}" for c in cells))
    best = order[0].values
    print("\nrecommended [sampling]: " + ", ".join(f"{k} = {v}" for k, v in best.items()))
    if args.write:
        path = write_card(files, best)
        print(f"wrote {path}")
    return 0


async def sweep(  # type: ignore[no-untyped-def]
    args: argparse.Namespace,
    files: PersonaFiles,
    grid: list[dict],  # type: ignore[type-arg]
    key: str,
    client: Any = None,
):
    """Score every grid point with the cheap metrics (through `client` if given)."""
    from data.eval.run import ServerTarget, run_eval
    from data.eval.tune import Point

    cases = list(files.cases)
    if args.cases:
        cases = _spread(cases, args.cases)
    model = args.model or files.card.name
    results = []
    for i, values in enumerate(grid, start=1):
        result = await run_eval(
            files.card,
            cases,
            files.training_replies,
            [model],
            target=ServerTarget(args.base_url, key, args.concurrency),
            samples=1,
            seed=args.seed,
            overrides=values,
            client=client,
        )
        m = result.models[0]
        if m.replies == 0:
            first = next((s.error for s in result.samples if s.error), "no replies")
            print(f"error: every request failed: {first}", file=sys.stderr)
            return []
        print(f"  point {i}/{len(grid)}: {values} -> {m.score:.3f}", file=sys.stderr)
        results.append(
            Point(
                values,
                m.score,
                m.completion_rate,
                m.length.in_range,
                m.looping_rate,
                m.markers.marker_rate,
                m.criteria_pass,
            )
        )
    return results


def _spread(cases: list, count: int) -> list:  # type: ignore[type-arg]
    """Up to `count` cases, taken round-robin across categories so each is represented."""
    by_category: dict[str, list] = {}  # type: ignore[type-arg]
    for case in cases:
        by_category.setdefault(case.category, []).append(case)
    picked: list = []  # type: ignore[type-arg]
    while len(picked) < count and any(by_category.values()):
        for bucket in by_category.values():
            if bucket and len(picked) < count:
                picked.append(bucket.pop(0))
    return picked


def write_card(files: PersonaFiles, values: dict[str, float | int]) -> Path:
    """Write the winning values into the card; a shipped sample is first copied to the user dir."""
    from data.atomic import staged_folder, write_text
    from data.eval.tune import update_sampling
    from data.home import personas_dir
    from data.personas import is_sample

    folder = files.folder
    if is_sample(folder):
        target = personas_dir() / files.name
        if not target.exists():
            with staged_folder(target) as staging:
                shutil.copytree(folder, staging, dirs_exist_ok=True)
        folder = target
    card = folder / "persona.toml"
    write_text(card, update_sampling(card.read_text(), values))
    return card
