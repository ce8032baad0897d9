"""Splits are deterministic, stratified by tag, and never leak a prompt across splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from data.dataset import Row, read_dataset
from data.eval.suite import read_suite
from data.similar import normalise, prepare, similarity
from data.split import contamination, leaks, split_rows, stratum

SUBJECTS = [
    "tide tables", "star charts", "ship plans", "harbour taxes", "clock repair", "bee keeping",
    "old maps", "sea shanties", "lighthouse keepers", "rope knots", "river barges", "salt trade",
    "weather diaries", "orrery gears", "paper making", "ink recipes", "bookbinding", "glass eyes",
    "whale songs", "coastal birds", "storm signals", "canal locks", "printing presses", "fog horns",
]  # fmt: skip
TEMPLATES = [
    "Where are the books on {s} kept?",
    "Who wrote the best history of {s}?",
    "Explain {s} to me in plain words.",
    "Is there a beginner's guide to {s}?",
    "What is the oldest record about {s}?",
]
TAGS = ["general"] * 13 + ["idk"] * 4 + ["clarify"] * 3 + ["boundary"] * 2 + ["off_topic"] * 2


def write_dataset(path: Path) -> list[Row]:
    lines = []
    for t, template in enumerate(TEMPLATES):
        for s, subject in enumerate(SUBJECTS):
            prompt = template.format(s=subject)
            tags = [TAGS[(s + t) % len(TAGS)]]
            lines.append((prompt, tags))
    # Near and exact duplicates of earlier prompts, each with a different reply.
    lines += [(f"{p} Please.", tags) for p, tags in lines[:15]]
    lines += [(p.upper(), tags) for p, tags in lines[20:30]]
    records = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": p},
                    {"role": "assistant", "content": f"Reply {i}."},
                ],
                "tags": tags,
            }
        )
        for i, (p, tags) in enumerate(lines)
    ]
    path.write_text("\n".join(records) + "\n")
    loaded = read_dataset(path)
    assert not loaded.problems
    return list(loaded.rows)


@pytest.fixture
def rows(tmp_path: Path) -> list[Row]:
    return write_dataset(tmp_path / "dataset.jsonl")


def prompts(rows: tuple[Row, ...]) -> list[str]:
    return [r.record.messages[0].content for r in rows]  # type: ignore[union-attr]


def test_no_prompt_exact_or_near_in_two_splits(rows: list[Row]) -> None:
    split = split_rows(rows, valid=0.15, test=0.1, seed=3)
    assert len(split.train) + len(split.valid) + len(split.test) == len(rows) == 145
    assert split.groups == 25
    for left, right in (
        (split.train, split.valid),
        (split.train, split.test),
        (split.valid, split.test),
    ):
        assert leaks(left, right) == []
        # Independently of the index: compare every pair.
        normalised = {normalise(p) for p in prompts(left)}
        assert not normalised & {normalise(p) for p in prompts(right)}
        prepared = [prepare(p) for p in prompts(left)]
        for text in prompts(right):
            assert all(similarity(prepare(text), other) is None for other in prepared)


def test_split_is_deterministic_and_seeded(rows: list[Row]) -> None:
    first = split_rows(rows, valid=0.2, seed=7)
    again = split_rows(list(rows), valid=0.2, seed=7)
    other = split_rows(rows, valid=0.2, seed=8)
    assert [r.line for r in first.valid] == [r.line for r in again.valid]
    assert [r.line for r in first.valid] != [r.line for r in other.valid]
    # Rows keep their original order within a split.
    assert [r.line for r in first.train] == sorted(r.line for r in first.train)


def test_split_is_stratified_by_tag(rows: list[Row]) -> None:
    split = split_rows(rows, valid=0.2, seed=1)
    total = Counter(stratum(r.record) for r in rows)
    valid = Counter(stratum(r.record) for r in split.valid)
    assert set(valid) == set(total)
    for name, count in total.items():
        # Near-duplicate groups move together, so a stratum may miss its share by one group.
        assert abs(valid[name] - 0.2 * count) <= 2, name
    assert {s.stratum: s.valid for s in split.strata} == dict(valid)


def test_bad_fractions_are_refused(rows: list[Row]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        split_rows(rows, valid=0.6, test=0.5)


def test_eval_contamination_exact_is_error_near_is_warning(rows: list[Row], tmp_path: Path) -> None:
    suite = tmp_path / "eval.jsonl"
    cases = [
        {"id": "clean", "category": "general", "messages": [{"role": "user", "content": "Sing."}]},
        {
            "id": "copied",
            "category": "general",
            "messages": [{"role": "user", "content": "Where are the books on tide tables kept?"}],
        },
        {
            "id": "reworded",
            "category": "general",
            "messages": [
                {"role": "user", "content": "Where are the books on old star charts kept?"}
            ],
        },
    ]
    suite.write_text("".join(json.dumps(c) + "\n" for c in cases))
    numbered, problems = read_suite(suite)
    assert not problems
    found = contamination(str(suite), numbered, rows)
    assert [(p.line, p.severity) for p in found] == [(2, "error"), (3, "warning")]
    first = f"{rows[0].file}:1"
    # The exact copy also nearly matches its "Please." variant: one problem, counting both.
    assert (
        found[0].message == f"eval case 'copied': its prompt is in training at {first} (and 1 more)"
    )
    assert found[1].message.startswith("eval case 'reworded': its prompt is ")
