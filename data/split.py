"""Deterministic, stratified train/valid/test splits with no prompt in two splits.

Records whose prompts are identical or near-identical are grouped first (union-find over the
near-duplicate pairs) and a group always lands in one split, so validation never measures
memorised prompts. Groups are shuffled per stratum (the record's first failure-mode tag, else its
first tag) with a seeded generator, and each split takes its share of every stratum.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import msgspec

from .atomic import write_text
from .dataset import Row
from .eval.suite import EvalCase
from .problem import Problem, error, warning
from .records import FAILURE_MODES, Record, as_messages, prompt_text
from .similar import cross_pairs, similar_pairs

SPLITS = ("train", "valid", "test")


class StratumCounts(msgspec.Struct, frozen=True):
    """How one stratum's records were divided."""

    stratum: str
    train: int
    valid: int
    test: int


class Split(msgspec.Struct, frozen=True):
    """The rows of each split, in their original order, and how strata were divided."""

    train: tuple[Row, ...]
    valid: tuple[Row, ...]
    test: tuple[Row, ...]
    strata: tuple[StratumCounts, ...]
    groups: int
    """Groups of two or more near-duplicate prompts that were kept together."""


def stratum(record: Record) -> str:
    """The record's first failure-mode tag, else its first tag, else `untagged`."""
    modes = [t for t in record.tags if t in FAILURE_MODES]
    return modes[0] if modes else (record.tags[0] if record.tags else "untagged")


def split_rows(rows: Sequence[Row], valid: float, test: float = 0.0, seed: int = 0) -> Split:
    """Divide rows into train/valid/test by fraction, per stratum, never splitting a group."""
    if valid < 0 or test < 0 or valid + test >= 1:
        raise ValueError("valid and test fractions must be >= 0 and sum to less than 1")
    groups = _groups(rows)
    by_stratum: dict[str, list[list[int]]] = {}
    for group in groups:
        by_stratum.setdefault(stratum(rows[group[0]].record), []).append(group)
    sizes = {name: sum(len(g) for g in gs) for name, gs in by_stratum.items()}
    wanted = {
        "valid": _allocate(sizes, _total(len(rows), valid)),
        "test": _allocate(sizes, _total(len(rows), test)),
    }
    assignment: dict[int, str] = {}
    counts: list[StratumCounts] = []
    for name in sorted(by_stratum):
        stratum_groups = list(by_stratum[name])
        # A string seed hashes the same on every run and machine (unlike hash()).
        random.Random(f"{seed}:{name}").shuffle(stratum_groups)
        taken = {"train": 0, "valid": 0, "test": 0}
        for group in stratum_groups:
            target = next(
                (s for s in ("test", "valid") if taken[s] + len(group) <= wanted[s].get(name, 0)),
                "train",
            )
            taken[target] += len(group)
            assignment.update((index, target) for index in group)
        counts.append(StratumCounts(name, taken["train"], taken["valid"], taken["test"]))
    parts = {s: tuple(r for i, r in enumerate(rows) if assignment[i] == s) for s in SPLITS}
    return Split(
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        strata=tuple(counts),
        groups=sum(1 for g in groups if len(g) > 1),
    )


def leaks(left: Sequence[Row], right: Sequence[Row]) -> list[tuple[Row, Row, float]]:
    """Prompts of `right` that are identical or near-identical to a prompt of `left`."""
    pairs = cross_pairs(
        [prompt_text(r.record) for r in left], [prompt_text(r.record) for r in right]
    )
    return [(left[p.left], right[p.right], p.score) for p in pairs]


def contamination(
    eval_file: str, cases: Sequence[tuple[int, EvalCase]], rows: Sequence[Row]
) -> list[Problem]:
    """Eval probes whose final prompt appears, exactly or nearly, among the training prompts.

    An exact copy is an error (the score would measure memory); a near copy is a warning.
    """
    turns = [(row, m.content) for row in rows for m in as_messages(row.record) if m.role == "user"]
    pairs = cross_pairs([case.prompt for _, case in cases], [text for _, text in turns])
    best: dict[int, tuple[float, int]] = {}
    matches: Counter[int] = Counter()
    for pair in pairs:
        matches[pair.left] += 1
        # Name the closest training prompt; the earliest wins a tie.
        best[pair.left] = max(best.get(pair.left, (-1.0, 0)), (pair.score, -pair.right))
    problems: list[Problem] = []
    for index, (score, right) in sorted(best.items()):
        line, case = cases[index]
        where = turns[-right][0].where
        more = f" (and {matches[index] - 1} more)" if matches[index] > 1 else ""
        if score >= 1.0:
            text = f"eval case {case.id!r}: its prompt is in training at {where}{more}"
            problems.append(error(eval_file, line, text))
        else:
            text = (
                f"eval case {case.id!r}: its prompt is {score:.0%} similar to training {where}"
                + more
            )
            problems.append(warning(eval_file, line, text))
    return problems


def _groups(rows: Sequence[Row]) -> list[list[int]]:
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in similar_pairs([prompt_text(r.record) for r in rows]):
        a, b = root(pair.left), root(pair.right)
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for index in range(len(rows)):
        members.setdefault(root(index), []).append(index)
    return list(members.values())


def _total(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return min(max(1, round(n * fraction)), n - 1)


def _allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Share `total` among strata in proportion to their sizes (largest remainder)."""
    whole = sum(sizes.values())
    if not whole or not total:
        return {}
    exact = {name: total * size / whole for name, size in sizes.items()}
    shares = {name: int(value) for name, value in exact.items()}
    rest = total - sum(shares.values())
    for name in sorted(exact, key=lambda n: (shares[n] - exact[n], n))[:rest]:
        shares[name] += 1
    return shares


def write_split(split: Split, folder: Path) -> list[Path]:
    """Write `train.jsonl`, `valid.jsonl` (and `test.jsonl` when used) atomically; return them."""
    written: list[Path] = []
    for name in SPLITS:
        rows: tuple[Row, ...] = getattr(split, name)
        if name == "test" and not rows:
            continue
        path = folder / f"{name}.jsonl"
        write_text(path, "".join(f"{r.raw}\n" for r in rows))
        written.append(path)
    return written
