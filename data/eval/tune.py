"""Sampling sweeps: the grid, the ranking, and writing the winner back into a card.

A grid is a TOML table of lists (or CLI lists), e.g.::

    temperature = [0.5, 0.8]
    top_p = [0.9, 1.0]
    min_tokens = [0, 16]
    repetition_penalty = [1.0, 1.1]
"""

from __future__ import annotations

import itertools

import msgspec
import tomlkit

SWEEPABLE = ("temperature", "top_p", "min_p", "top_k", "min_tokens", "repetition_penalty")


class Grid(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Values to try for each sampling field (an empty list leaves the field alone)."""

    temperature: list[float] = msgspec.field(default_factory=lambda: [0.5, 0.8])
    top_p: list[float] = msgspec.field(default_factory=lambda: [0.9, 1.0])
    min_tokens: list[int] = msgspec.field(default_factory=lambda: [0, 16])
    repetition_penalty: list[float] = msgspec.field(default_factory=lambda: [1.0, 1.1])
    min_p: list[float] = []
    top_k: list[int] = []


class Point(msgspec.Struct, frozen=True):
    """One grid point and its score."""

    values: dict[str, float | int]
    score: float
    completion: float
    length_in_range: float
    looping: float
    voice: float
    criteria: float


def parse_grid(text: str | bytes) -> Grid:
    """Decode a grid from TOML; unknown fields are refused by name."""
    return msgspec.toml.decode(text, type=Grid)


def points(grid: Grid) -> list[dict[str, float | int]]:
    """Every combination of the grid's non-empty fields, in a stable order."""
    fields = [(name, getattr(grid, name)) for name in SWEEPABLE if getattr(grid, name)]
    if not fields:
        return [{}]
    names = [name for name, _ in fields]
    return [
        dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in fields))
    ]


def ranked(results: list[Point]) -> list[Point]:
    """Best first; ties broken by completion, then by fewer loops."""
    return sorted(results, key=lambda p: (-p.score, -p.completion, p.looping))


def update_sampling(card_text: str, values: dict[str, float | int]) -> str:
    """Set `[sampling]` keys in a card's TOML, keeping every comment and the layout."""
    document = tomlkit.parse(card_text)
    if "sampling" not in document:
        document["sampling"] = tomlkit.table()
    table = document["sampling"]
    for key, value in values.items():
        table[key] = value  # type: ignore[index]
    return tomlkit.dumps(document)
