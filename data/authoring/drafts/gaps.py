"""What a dataset lacks, as a list of draft targets: a length band, a tag, a number of turns.

The targets follow what `persona data stats` warns about. Each failure mode is aimed at until
it holds `FAILURE_QUOTA` of the records (the four together then clear the stats' 15% floor); a
card tag until it holds `TAG_QUOTA`; conversations of two user turns until they are
`MULTI_TURN_SHARE` of the records; and every reply goes to the 20-word band of the card's
`reply_words` range that has the fewest replies, until no band holds more than `BAND_GOAL`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from ...records import FAILURE_MODES
from ...stats import WORD_BAND, DatasetStats

FAILURE_QUOTA = 0.05
TAG_QUOTA = 0.05
MULTI_TURN_SHARE = 0.2
BAND_GOAL = 0.3
"""A little under the stats' 35% so that accepted drafts clear the warning."""
MIN_BAND_WIDTH = 10
MAX_PLAN = 200


class DraftTarget(msgspec.Struct, frozen=True):
    """One draft to ask for: every reply in `words` (inclusive), tagged `tag`, `turns` long."""

    words: tuple[int, int]
    tag: str | None = None
    turns: int = 1

    def describe(self) -> str:
        """`40-59 words, idk, 2 turns`."""
        parts = [f"{self.words[0]}-{self.words[1]} words"]
        if self.tag:
            parts.append(self.tag)
        if self.turns > 1:
            parts.append(f"{self.turns} turns")
        return ", ".join(parts)


def bands(reply_words: Sequence[int]) -> list[tuple[int, int]]:
    """The stats' 20-word bands clipped to a card's `[min, max]` reply range."""
    low, high = reply_words
    found = []
    for start in range(low - low % WORD_BAND, high + 1, WORD_BAND):
        band = (max(start, low), min(start + WORD_BAND - 1, high))
        if band[1] - band[0] + 1 >= min(MIN_BAND_WIDTH, high - low + 1):
            found.append(band)
    return found


def plan_drafts(
    stats: DatasetStats,
    reply_words: Sequence[int] = (20, 200),
    card_tags: Sequence[str] = (),
    count: int | None = None,
) -> list[DraftTarget]:
    """`count` draft targets (default: as many as close every gap, at most `MAX_PLAN`)."""
    ranges = bands(reply_words)
    band_counts = {b: 0 for b in ranges}
    for band in stats.words.histogram:
        for r in ranges:
            if r[0] // WORD_BAND == band.low // WORD_BAND:
                band_counts[r] += band.count
    replies = stats.words.count
    records = stats.records
    multi = stats.multi_turn
    tags = {s.text: s.count for s in stats.tags}
    modes = {s.text: s.count for s in stats.failure_modes}
    targets: list[DraftTarget] = []
    limit = MAX_PLAN if count is None else count
    while len(targets) < limit:
        total = records + 1
        quota = math.ceil(FAILURE_QUOTA * total)
        tag_quota = math.ceil(TAG_QUOTA * total)
        short = [m for m in FAILURE_MODES if modes.get(m, 0) < quota]
        short_tags = [t for t in card_tags if tags.get(t, 0) < tag_quota]
        wide = max(band_counts.values(), default=0) > BAND_GOAL * max(replies, 1)
        few_multi = multi < MULTI_TURN_SHARE * total
        if count is None and not (short or short_tags or wide or few_multi):
            break
        tag = min(short, key=lambda m: modes.get(m, 0)) if short else None
        if tag is None and short_tags:
            tag = min(short_tags, key=lambda t: tags.get(t, 0))
        turns = 2 if few_multi else 1
        band = min(ranges, key=lambda r: (band_counts[r], r))
        targets.append(DraftTarget(band, tag, turns))
        records += 1
        replies += turns
        multi += turns > 1
        band_counts[band] += turns
        if tag is not None:
            tags[tag] = tags.get(tag, 0) + 1
            if tag in FAILURE_MODES:
                modes[tag] = modes.get(tag, 0) + 1
    return targets


def gaps(stats: DatasetStats) -> list[str]:
    """The stats' own warnings that drafting can fill (length, failure modes)."""
    return [
        w
        for w in stats.warnings
        if "words" in w or "failure-mode" in w or "no records tagged" in w or "uniform" in w
    ]
