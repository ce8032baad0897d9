"""`dataset_stats` on a small known file: exact numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.card import parse_card
from data.dataset import read_dataset
from data.records import ChatRecord, Message
from data.stats import Band, DatasetStats, Share, dataset_stats
from studio.data_cli.render import render_stats

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
        ("disclosure", 0),
        ("benign_near", 0),
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
        "50% of replies are outside the card's reply_words range",
        "no records tagged 'boundary'",
        "no records tagged 'disclosure'",
        "no records tagged 'benign_near'",
        # 'shelf' is in as many replies, but it is one of the card's markers: wanted, no formula.
        "card phrase 'Noted.' is in 33% of replies: one formula dominates",
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


def seller(reply_words: str = "[20, 200]") -> object:
    """A map seller's card: "map" is the marker it asks for."""
    return parse_card(
        f"""
name = "seller"
system_prompt = "You sell maps."
[style]
markers = ["map", "old road"]
reply_words = {reply_words}
"""
    )


def said(*replies: str) -> list[ChatRecord]:
    return [
        ChatRecord((Message("user", f"Question {i}?"), Message("assistant", text)), ("idk",))
        for i, text in enumerate(replies)
    ]


def test_a_card_marker_is_wanted_not_a_formula() -> None:
    records = said(
        "This map shows the coast, friend, and every cove on it.",
        "Take the map with the red seal; it shows the old road north.",
        "A map of the hills costs two coins and shows each old road.",
        "Every map I sell is drawn by hand in the back room.",
    )
    warnings = dataset_stats(records, seller()).warnings  # type: ignore[arg-type]
    assert not [w for w in warnings if "'map'" in w or "'old road'" in w]
    without_card = dataset_stats(records).warnings
    assert not [w for w in without_card if "'map'" in w]  # single words are never phrases
    plain = parse_card('name = "p"\nsystem_prompt = "x"\n[style]\ncatchphrases = ["map"]\n')
    assert (
        "card phrase 'map' is in 100% of replies: one formula dominates"
        in dataset_stats(records, plain).warnings
    )


def test_length_bands_follow_the_card_reply_words() -> None:
    # Eight lengths 5 words apart: half fall in one 20-word band, none share a 5-word band.
    lengths = [11, 16, 21, 26, 31, 36, 41, 46]
    records = said(*(" ".join(["w"] * n) for n in lengths))
    wide = dataset_stats(records, seller("[20, 200]")).warnings  # type: ignore[arg-type]
    assert "50% of replies are 20-39 words (more than 35% in one 20-word band)" in wide
    assert "25% of replies are outside the card's reply_words range" in wide
    narrow = dataset_stats(records, seller("[10, 55]"))  # type: ignore[arg-type]
    assert narrow.fullest_band == Band(10, 15, 1)
    assert not [w for w in narrow.warnings if "band" in w or "reply_words" in w]
