"""`persona eval PERSONA`: score a persona's held-out suite on one or more model ids."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import msgspec

from data.atomic import write_bytes, write_text
from data.problem import listed
from studio.data_cli.parser import positive_int

from .persona_files import PersonaFiles, load_persona_files


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `eval` options."""
    parser.add_argument("persona", help="persona name (or a persona folder)")
    parser.add_argument(
        "--models",
        nargs="+",
        metavar="ID",
        help="model ids to compare (default: the persona); e.g. gemma-3-270m juni juni@run-2:100",
    )
    parser.add_argument(
        "--samples", type=positive_int, default=1, help="replies per prompt (seeds S..S+N-1)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--suite", type=Path, metavar="FILE", help="an eval suite to use instead of eval.jsonl"
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default=None, help="default: $PERSONA_API_KEY")
    parser.add_argument(
        "--concurrency", type=positive_int, default=4, help="requests in flight at once"
    )
    parser.add_argument(
        "--turns",
        type=int,
        default=0,
        metavar="N",
        help="also play the suite's conversation scripts for N turns and report drift per turn",
    )
    pairs = parser.add_mutually_exclusive_group()
    pairs.add_argument(
        "--contrast-only",
        action="store_true",
        help="only score the suite's chosen/rejected pairs (teacher-forced, no sampling)",
    )
    pairs.add_argument(
        "--no-contrast", action="store_true", help="skip the chosen/rejected pair scoring"
    )
    parser.add_argument("--temperature", type=float, help="override the persona's default")
    parser.add_argument("--max-tokens", type=int, help="override the persona's default")
    parser.add_argument("--judge-url", help="an OpenAI-compatible endpoint for an LLM judge")
    parser.add_argument("--judge-model", default="judge", help="the judge's model id")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the full result as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write a markdown report")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="evaluate each new checkpoint of the persona's newest run as it lands",
    )
    parser.add_argument(
        "--personas",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of personas, searched after your own (repeatable)",
    )
    parser.add_argument("--adapters", type=Path, metavar="DIR", help="adapter registry folder")


def run(args: argparse.Namespace) -> int:
    """Run `persona eval`."""
    import os

    try:
        files = load_persona_files(args.persona, args.personas, args.suite)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if files.cases_problems:
        for line in listed(files.cases_problems):
            print(line, file=sys.stderr)
        return 1
    if not files.cases:
        where = args.suite or "eval.jsonl"
        print(f"error: {files.name} has no eval cases ({where})", file=sys.stderr)
        return 1
    if args.turns:
        from data.eval.drift import turns_problem

        problem = turns_problem(files.scripts, args.turns)
        if problem is not None:
            print(f"error: --{problem} ({files.folder / 'eval.jsonl'})", file=sys.stderr)
            return 1
    api_key = args.api_key or os.environ.get("PERSONA_API_KEY") or "not-needed"
    if args.watch:
        return asyncio.run(_watch(args, files, api_key))
    models = args.models or [files.card.name]
    result = asyncio.run(_evaluate(args, files, models, api_key))
    code = _emit(args, result)
    if files.card.guard is not None:
        _guard(args, files, api_key)
    return code


def _guard(args: argparse.Namespace, files: PersonaFiles, key: str) -> None:
    """The persona guard's own table, apart from the reply scores."""
    import openai

    from data.eval.guard_scores import guard_rows, guard_table

    async def rows():  # type: ignore[no-untyped-def]
        client = openai.AsyncOpenAI(base_url=args.base_url, api_key=key, max_retries=0)
        try:
            return await guard_rows(client, files.card.name, files.cases)
        finally:
            await client.close()

    try:
        print(guard_table(asyncio.run(rows())))
    except openai.OpenAIError as exc:
        print(f"guard: not measured: {exc}", file=sys.stderr)


async def _evaluate(args: argparse.Namespace, files: PersonaFiles, models: list[str], key: str):  # type: ignore[no-untyped-def]
    from data.eval.judge import Judge
    from data.eval.run import ServerTarget, run_eval

    overrides: dict[str, float | int] = {}
    if args.temperature is not None:
        overrides["temperature"] = args.temperature
    if args.max_tokens is not None:
        overrides["max_tokens"] = args.max_tokens
    judge = Judge(args.judge_url, args.judge_model) if args.judge_url else None

    def progress(done: int, total: int) -> None:
        print(f"\r  {done}/{total} replies", end="", file=sys.stderr, flush=True)

    target = ServerTarget(args.base_url, key, args.concurrency)
    try:
        result = await run_eval(
            files.card,
            files.cases,
            files.training_replies,
            models,
            target=target,
            samples=args.samples,
            seed=args.seed,
            overrides=overrides,
            judge=judge,
            progress=progress,
            sample=not getattr(args, "contrast_only", False),
            contrast=not getattr(args, "no_contrast", False),
        )
        if getattr(args, "turns", 0) and result.models:
            from data.eval.drift import run_drift

            print(file=sys.stderr)
            drift, replies = await run_drift(
                files.card,
                files.scripts,
                files.training_replies,
                models,
                args.turns,
                target=target,
                samples=args.samples,
                seed=args.seed,
                overrides=overrides,
                progress=progress,
            )
            result = msgspec.structs.replace(
                result, turns=args.turns, drift=drift, drift_samples=replies
            )
    finally:
        if judge is not None:
            await judge.aclose()
    print(file=sys.stderr)
    return result


def _emit(args: argparse.Namespace, result) -> int:  # type: ignore[no-untyped-def]
    from data.eval.report import markdown, terminal_table, to_json

    print(terminal_table(result))
    if args.json:
        write_bytes(args.json, to_json(result))
    if args.markdown:
        write_text(args.markdown, markdown(result))
    errors = [s.error for s in result.samples if s.error]
    errors += [r.error for r in result.contrast_replies if r.error]
    sampled_none = bool(result.models) and all(m.replies == 0 for m in result.models)
    scored_none = bool(result.contrast_replies) and all(r.error for r in result.contrast_replies)
    failed = sampled_none or scored_none or not (result.models or result.contrast_replies)
    if failed:
        first = next(iter(errors), "no replies and no contrast pairs in the suite")
        print(f"error: every request failed: {first}", file=sys.stderr)
    return 1 if failed else 0


async def _watch(args: argparse.Namespace, files: PersonaFiles, key: str) -> int:
    """Poll the registry; evaluate each new checkpoint and store its scores in run.json."""
    from adapters.registry import Registry
    from adapters.training.record import store_eval
    from data.eval.report import summary, terminal_table
    from data.home import adapters_dir

    registry = Registry(args.adapters or adapters_dir())
    seen: set[tuple[str, int]] = set()
    print(
        f"watching {registry.root / files.name} for new checkpoints (Ctrl-C to stop)",
        file=sys.stderr,
    )
    try:
        while True:
            runs = registry.runs(files.name)
            if runs:
                run = runs[-1]
                for ckpt in registry.checkpoints(files.name, run):
                    step = ckpt.manifest.step
                    if (run, step) in seen:
                        continue
                    seen.add((run, step))
                    model = f"{files.name}@{run}:{step}"
                    result = await _evaluate(args, files, [model], key)
                    print(terminal_table(result))
                    if result.models and result.models[0].replies:
                        pairs = result.contrast[0] if result.contrast else None
                        store_eval(
                            registry.run_dir(files.name, run),
                            step,
                            summary(result.models[0], pairs),
                        )
            await asyncio.sleep(2.0)
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
