"""Each persona metric on crafted replies whose answers are known."""

from __future__ import annotations

import pytest

from data.eval.criteria import check_reply
from data.eval.metrics import (
    MemoIndex,
    ks_statistic,
    length_stats,
    markers,
    memorisation,
    repetition,
)

TRAINING = [
    "The tide comes in twice a day because the moon pulls on the sea like a gentle magnet.",
    "Crabs walk sideways because their legs bend that way, which is quick on slippery rocks.",
]


def test_looping_reply_is_detected() -> None:
    loop = "I love the sea. " + "The sea is big and blue. " * 6
    result = repetition(loop)
    assert result.looping
    assert result.repeated_share > 0.5
    assert result.distinct_2 < 0.5


def test_varied_reply_is_not_looping() -> None:
    reply = "Crabs hide under rocks when gulls fly over, then scuttle out to nibble seaweed."
    result = repetition(reply)
    assert not result.looping
    assert result.repeated_share == 0.0
    assert result.distinct_1 == 1.0


def test_memorised_reply_has_full_share_and_longest_span() -> None:
    index = MemoIndex(TRAINING)
    copied = "Well! The tide comes in twice a day because the moon pulls on the sea, you know."
    result = memorisation([copied], index)
    assert result.share == 1.0
    # "the tide comes in twice a day because the moon pulls on the sea" = 14 words
    assert result.longest == 14


def test_fresh_reply_is_not_memorised() -> None:
    index = MemoIndex(TRAINING)
    result = memorisation(
        ["Seals sleep floating upright like bottles bobbing in a calm bay."], index
    )
    assert result.share == 0.0
    assert result.longest == 0


def test_length_stats_against_range_and_reference() -> None:
    replies = ["one two three", "a b c d e f g h i j"]
    stats = length_stats(replies, [5, 20], reference=[3, 10])
    assert stats.too_short == 0.5
    assert stats.in_range == 0.5
    assert stats.mean == pytest.approx(6.5)
    assert stats.ks == 0.0


def test_ks_statistic_of_disjoint_samples_is_one() -> None:
    assert ks_statistic([1, 2, 3], [10, 11]) == 1.0
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)


def test_marker_and_banned_rates() -> None:
    replies = [
        "Splish-splash! Flicker is sleepy today.",
        "As an AI language model I cannot swim.",
        "The lighthouse is tall.",
        "Plain reply.",
    ]
    result = markers(replies, ["Splish-splash"], ["Flicker", "lighthouse"], ["As an AI"])
    assert result.catchphrase_rate == 0.25
    assert result.marker_rate == 0.5
    assert result.banned_rate == 0.25
    assert result.banned_hits == {"As an AI": 1}


def test_too_short_reply_fails_length() -> None:
    result = check_reply("Yes.", category="general", length=[20, 200])
    assert not result.passed
    assert "too short" in result.failures[0]


def test_wrong_category_fails_with_the_rule_meaning() -> None:
    # An `idk` prompt answered with confident invention.
    result = check_reply(
        "The deepest whale ever dived exactly 9,000 metres on a Tuesday.", category="idk"
    )
    assert not result.passed
    assert any("admits not knowing" in f for f in result.failures)
    ok = check_reply("Hmm, I don't know that one! Let's find out together.", category="idk")
    assert ok.passed


def test_clarify_needs_a_question() -> None:
    assert not check_reply("Which one. I like both.", category="clarify").passed
    assert check_reply("Which boat do you mean, the red one or Button?", category="clarify").passed


def test_off_topic_counts_persona_markers_as_steering_back() -> None:
    reply = "Stocks are tricky! Up at the lighthouse we count crabs, not coins."
    assert check_reply(reply, category="off_topic", persona_markers=["lighthouse"]).passed
    assert not check_reply("Buy shares in tech companies.", category="off_topic").passed


def test_must_not_include_names_the_phrase() -> None:
    result = check_reply("As an AI, I think so.", category="general", must_not_include=["As an AI"])
    assert result.failures == ("mentions 'As an AI'",)
