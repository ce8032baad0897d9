"""The actions behind `persona data check|stats|pairs|split`, printing to the terminal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from data.check import check_dataset
from data.dataset import read_datasets
from data.eval.pair_replies import pair_reply_problems
from data.eval.suite import read_scripts, read_suite, script_probes
from data.jsonl import count_records
from data.personas import DATASET, TRAIN, is_sample, training_set
from data.problem import Problem, listed
from data.split import contamination, split_rows, write_split
from data.stats import dataset_stats
from data.tokens import ChatTokenizer

from .paths import FileGroup, UsageError, group_paths, load_tokenizer, read_card
from .render import render_stats


def check(groups: list[FileGroup], use_tokenizer: bool) -> int:
    """Print every problem as file:line; 1 when any is an error."""
    errors = warnings = records = 0
    tokenizers: dict[str, tuple[ChatTokenizer | None, str | None]] = {}
    for group in groups:
        card, problems = read_card(group)
        tokenizer, note = None, None
        if use_tokenizer and card is not None and (group.datasets or group.eval_file):
            if card.base_model not in tokenizers:
                tokenizers[card.base_model] = load_tokenizer(card.base_model)
            tokenizer, note = tokenizers[card.base_model]
        report = check_dataset(group.datasets, card, tokenizer)
        problems += report.problems
        records += len(report.rows)
        if group.eval_file is not None:
            numbered, found = read_suite(group.eval_file)
            scripts, bad_scripts = read_scripts(group.eval_file)
            problems += found + bad_scripts
            words = card.style.reply_words if card is not None else ()
            problems += pair_reply_problems(str(group.eval_file), numbered, words, tokenizer)
            problems += contamination(str(group.eval_file), numbered, report.rows)
            problems += contamination(str(group.eval_file), script_probes(scripts), report.rows)
            records += len(numbered) + len(scripts)
        for line in listed(problems):
            print(line)
        notes = [note] if note else [n for n in report.notes if use_tokenizer or "token" not in n]
        if not use_tokenizer:
            notes.append("token checks skipped (--no-tokenizer)")
        for text in notes:
            print(f"{group.label}: note: {text}", file=sys.stderr)
        errors += sum(p.severity == "error" for p in problems)
        warnings += sum(p.severity == "warning" for p in problems)
    print(f"{records} records checked: {errors} errors, {warnings} warnings")
    return 1 if errors else 0


def stats(groups: list[FileGroup], use_tokenizer: bool, as_json: bool, width: int) -> int:
    """Print the stats of each group's datasets; 1 when a file could not be read fully."""
    failed = False
    for group in groups:
        if not group.datasets:
            continue
        card, problems = read_card(group)
        loaded = read_datasets(group.datasets)
        tokenizer, note = (None, None)
        if use_tokenizer and card is not None:
            tokenizer, note = load_tokenizer(card.base_model)
        result = dataset_stats([r.record for r in loaded.rows], card, tokenizer)
        bad = [p for p in (*problems, *loaded.problems) if p.severity == "error"]
        failed = failed or bool(bad)
        if as_json:
            sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
        else:
            names = ", ".join(p.name for p in group.datasets)
            print(f"== {group.label} ({names})")
            print(render_stats(result, width))
        if bad:
            print(
                f"{group.label}: {len(bad)} problems left records out; "
                "run `persona data check` to see them",
                file=sys.stderr,
            )
        if note:
            print(f"{group.label}: note: {note}", file=sys.stderr)
    return 1 if failed else 0


def pairs(args: argparse.Namespace) -> int:
    """Draft preference pairs from the model's rule-breaking replies; write them for review."""
    import asyncio
    import os

    from data.atomic import write_bytes
    from data.authoring.pairs import build_pairs, encode_pairs_file, probes_of
    from data.check import token_problems
    from data.dataset import Row
    from data.eval.run import ServerTarget
    from data.personas import PAIRS, TRAIN_FILES, PersonaError, resolve
    from data.records import FAILURE_MODES, PreferenceRecord

    try:
        entry = resolve(args.persona)
    except PersonaError as exc:
        raise UsageError(str(exc)) from None
    folder, card = entry.folder, entry.card
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    unknown = sorted(set(categories) - set(FAILURE_MODES))
    if unknown:
        raise UsageError(f"--categories: {', '.join(unknown)} (known: {', '.join(FAILURE_MODES)})")
    out = args.out or folder / PAIRS
    if args.out is None and entry.read_only:
        raise UsageError(f"{folder} is a read-only sample persona; pass --out FILE")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists (it may hold reviewed pairs); pass --force to replace it")
    # Training records only: the eval suite's held-out probes are never sent.
    train = entry.train_file
    if train is None:
        raise UsageError(f"{folder}: no {' or '.join(TRAIN_FILES)}")
    loaded = read_datasets([train])
    probes = probes_of([(r.where, r.record) for r in loaded.rows], categories, card)
    key = args.api_key or os.environ.get("PERSONA_API_KEY") or "not-needed"

    def progress(done: int, total: int) -> None:
        print(f"\r  {done}/{total} replies", end="", file=sys.stderr, flush=True)

    # A draft the trainer would refuse (too long for max_seq_length, say) is no draft: the same
    # token checks `persona data check` and `persona train` run decide, with the same tokenizer.
    tokenizer, note = load_tokenizer(card.base_model)
    if note:
        print(f"warning: {note}", file=sys.stderr)

    def fits(record: PreferenceRecord) -> bool:
        row = Row(str(out), 0, record, "")
        return tokenizer is None or not any(
            p.severity == "error" for p in token_problems(row, tokenizer, card)
        )

    report = asyncio.run(
        build_pairs(
            card,
            probes,
            args.model,
            target=ServerTarget(args.base_url, key, args.concurrency),
            samples=args.samples,
            seed=args.seed,
            progress=progress,
            fits=fits,
        )
    )
    print(file=sys.stderr)
    for where in report.skipped:
        print(f"{where}: warning: the dataset's own reply breaks its category's rule; skipped")
    for text in report.errors[:5]:
        print(f"error: {text}", file=sys.stderr)
    if report.replies == 0:
        print("error: no replies came back; is the server running?", file=sys.stderr)
        return 1
    write_bytes(out, encode_pairs_file(report.pairs))
    print(f"{'category':<10} {'replies':>7} {'broke the rule':>15}")
    for category, asked in report.asked.items():
        broke = report.broken.get(category, 0)
        print(f"{category:<10} {asked:>7} {broke:>8} ({broke / asked:.0%})")
    if cuts := sum(report.cut.values()):
        print(
            f"{cuts} rule-breaking replies ran into max_tokens and were not paired: a pair "
            "would train on an end of turn the model never wrote"
        )
    if unfit := sum(report.unfit.values()):
        print(
            f"{unfit} rule-breaking replies were not paired: training would refuse the pair "
            f"(the data checker's token checks, such as training.max_seq_length "
            f"{card.training.max_seq_length})"
        )
    print(
        f"wrote {len(report.pairs)} pairs from {report.probes} records to {out}; review them, "
        f"then move the good ones into {folder / 'preference.jsonl'} to train on"
    )
    return 0


def split(args: argparse.Namespace) -> int:
    """Write train/valid(/test) files; refuse to overwrite the input or a sample persona."""
    group = group_paths([args.path])[0]
    source = _split_source(group, Path(args.path))
    card, problems = read_card(group)
    report = check_dataset([source], card)
    problems += report.errors
    if problems:
        for line in listed(problems):
            print(line)
        print(f"{source}: fix these errors before splitting", file=sys.stderr)
        return 1
    out = args.out or source.parent
    if args.out is None and is_sample(out):
        raise UsageError(f"{out} is a read-only sample persona; pass --out")
    valid = args.valid if args.valid is not None else (card.training.val_fraction if card else 0.1)
    seed = args.seed if args.seed is not None else (card.training.seed if card else 0)
    try:
        result = split_rows(report.rows, valid, args.test, seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    targets_out = [out / f"{n}.jsonl" for n in ("train", "valid", "test")]
    if any(p.resolve() == source.resolve() for p in targets_out):
        raise UsageError(f"writing to {out} would overwrite {source.name}; pass --out")
    for path in write_split(result, out):
        print(f"wrote {path} ({count_records(path)} records)")
    print(f"{'stratum':<12} {'train':>6} {'valid':>6} {'test':>6}")
    for s in result.strata:
        print(f"{s.stratum:<12} {s.train:>6} {s.valid:>6} {s.test:>6}")
    print(f"{result.groups} groups of near-duplicate prompts were kept within one split")
    eval_file = args.eval or group.eval_file
    if eval_file is not None:
        numbered, found = read_suite(eval_file)
        overlaps = found + contamination(str(eval_file), numbered, result.train)
        for line in listed(overlaps):
            print(line)
        print(f"{eval_file}: {len(numbered)} eval cases, {_overlaps(overlaps)} overlap training")
    return 0


def _split_source(group: FileGroup, given: Path) -> Path:
    if given.is_file():
        return given
    # The whole dataset when there is one: a split of `train.jsonl` would shrink it each time.
    folder = Path(group.label)
    source = (folder / DATASET) if (folder / DATASET).is_file() else training_set(folder)
    if source is None:
        raise UsageError(f"{folder}: no {DATASET} or {TRAIN} to split")
    return source


def _overlaps(problems: list[Problem]) -> int:
    return sum(1 for p in problems if "training" in p.message)
