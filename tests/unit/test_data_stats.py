"""`dataset_stats` on a small known file: exact numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.card import parse_card
from data.dataset import read_dataset
from data.records import ChatRecord, Message
from data.render import render_stats
from data.stats import Band, DatasetStats, Share, dataset_stats

SMALL = Path(__file__).parents[1] / "fixtures" / "datasets" / "stats_small.jsonl"
CARD = parse_card(
    """
name = "t"
system_prompt = "x"
[style]
catchphrases = ["Noted."]
markers = ["shelf", "ledger"]
"""
)


@pytest.fixture(scope="module")
def stats() -> DatasetStats:
    loaded = read_dataset(SMALL)
    assert not loaded.problems
    return dataset_stats([r.record for r in loaded.rows], CARD)


def test_reply_lengths(stats: DatasetStats) -> None:
    # Replies are 5, 10, 20, 25, 40 and 5 words long.
    words = stats.words
    assert (words.count, words.min, words.max) == (6, 5, 40)
    assert (words.mean, words.median, words.stdev, words.cv) == (17.5, 15.0, 12.5, 0.714)
    assert words.histogram == (Band(0, 20, 3), Band(20, 40, 2), Band(40, 60, 1))
    assert stats.tokens is None


def test_counts_tags_and_failure_modes(stats: DatasetStats) -> None:
    assert (stats.records, stats.single_turn, stats.multi_turn, stats.replies) == (5, 4, 1, 6)
    assert [(s.text, s.count) for s in stats.failure_modes] == [
        ("idk", 1),
        ("clarify", 1),
        ("off_topic", 1),
        ("boundary", 0),
    ]
    assert stats.failure_share == 0.6
    assert [s.text for s in stats.tags] == ["clarify", "general", "idk", "multi_turn", "off_topic"]


def test_formulas_and_duplicates(stats: DatasetStats) -> None:
    assert stats.catchphrases == (
        Share("Noted.", 2, 2 / 6),
        Share("shelf", 2, 2 / 6),
        Share("ledger", 0, 0.0),
    )
    assert stats.openers[0] == Share("noted the", 2, 2 / 6)
    assert stats.phrases == (Share("noted the shelf is", 2, 2 / 6),)
    # "hi!" repeats "Hi" once normalised; "Noted. The shelf is full." is said twice.
    assert (stats.duplicate_prompts, stats.near_duplicate_prompts, stats.duplicate_replies) == (
        1,
        0,
        1,
    )


def test_warnings(stats: DatasetStats) -> None:
    assert stats.warnings == (
        "50% of replies are 0-19 words (more than 35% in one 20-word band)",
        "no records tagged 'boundary'",
        "card phrase 'Noted.' is in 33% of replies: one formula dominates",
        "card phrase 'shelf' is in 33% of replies: one formula dominates",
        "opener 'noted the' is in 33% of replies: one formula dominates",
        "phrase 'noted the shelf is' is in 33% of replies: one formula dominates",
        "1 duplicate and 0 near-duplicate prompts",
    )


def test_uniform_lengths_warn_like_the_original_experiment() -> None:
    # 52-76 words, every reply: the failure that made the first persona model one-note.
    records = [
        ChatRecord((Message("user", f"Question {i}?"), Message("assistant", " ".join(["w"] * n))))
        for i, n in enumerate([52, 60, 64, 70, 76, 58, 66, 72])
    ]
    stats = dataset_stats(records)
    assert stats.words.cv < 0.25
    assert stats.warnings[0].startswith("reply lengths are uniform (CV 0.11, 52-76 words)")
    assert "failure-mode examples are 0% of records (aim for at least 15%)" in stats.warnings


def test_render_draws_the_histogram(stats: DatasetStats) -> None:
    text = render_stats(stats, width=10)
    assert "   0-19 ██████████    3   50%" in text
    assert "  20-39 ██████▋       2   33%" in text
    assert "  40-59 ███▍          1   17%" in text
