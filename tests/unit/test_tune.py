"""Sampling sweep pieces: the grid, the ranking, and card writing that keeps comments."""

from __future__ import annotations

import msgspec
import pytest

from data.card import parse_card
from data.eval.tune import Grid, Point, parse_grid, points, ranked, update_sampling

CARD = """# Pip's card
name = "pip"
system_prompt = "You are Pip."

[sampling]
# warm but not wild
temperature = 0.9  # tried by hand
max_tokens = 200
"""


def test_grid_points_cover_every_combination() -> None:
    grid = Grid(temperature=[0.5, 0.8], top_p=[1.0], min_tokens=[0, 16], repetition_penalty=[])
    found = points(grid)
    assert len(found) == 4
    assert {"temperature": 0.8, "top_p": 1.0, "min_tokens": 16} in found


def test_grid_refuses_unknown_field() -> None:
    with pytest.raises(msgspec.ValidationError, match="temprature"):
        parse_grid("temprature = [0.5]")


def test_ranking_prefers_score_then_completion() -> None:
    a = Point({"temperature": 0.5}, 0.7, 0.9, 1, 0, 1, 1)
    b = Point({"temperature": 0.8}, 0.7, 1.0, 1, 0, 1, 1)
    c = Point({"temperature": 1.0}, 0.9, 0.5, 1, 0, 1, 1)
    assert [p.values["temperature"] for p in ranked([a, b, c])] == [1.0, 0.8, 0.5]


def test_update_sampling_keeps_comments_and_other_keys() -> None:
    text = update_sampling(CARD, {"temperature": 0.6, "min_tokens": 16})
    assert "# Pip's card" in text
    assert "# warm but not wild" in text
    assert "max_tokens = 200" in text
    card = parse_card(text)
    assert card.sampling.temperature == 0.6
    assert card.sampling.min_tokens == 16
