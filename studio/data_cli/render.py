"""Plain-text rendering of dataset stats for the terminal: histograms as bars, then tables."""

from __future__ import annotations

from collections.abc import Sequence

from data.stats import DatasetStats, Lengths, Share

BLOCKS = " ▏▎▍▌▋▊▉█"
"""Eighth-width blocks, so short bars still show their size."""
TAGS_SHOWN = 15


def bar(value: float, width: int) -> str:
    """A horizontal bar of `value` (0..1) times `width` cells."""
    eighths = round(max(0.0, min(1.0, value)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (BLOCKS[part] if part else "")


def histogram(lengths: Lengths, width: int = 40) -> list[str]:
    """One line per band: range, bar, count and share."""
    if not lengths.count:
        return [f"  no replies to measure in {lengths.unit}"]
    peak = max(b.count for b in lengths.histogram)
    label = len(str(lengths.histogram[-1].high - 1))
    return [
        f"  {b.low:>{label}}-{b.high - 1:<{label}} {bar(b.count / peak, width):<{width}} "
        f"{b.count:>4}  {b.count / lengths.count:>4.0%}"
        for b in lengths.histogram
    ]


def summary(lengths: Lengths) -> str:
    """Min, median, mean, max, stdev and CV on one line."""
    return (
        f"{lengths.count} replies: min {lengths.min}, median {lengths.median:g}, "
        f"mean {lengths.mean:.1f}, max {lengths.max} {lengths.unit}; "
        f"stdev {lengths.stdev:.1f}, CV {lengths.cv:.2f}"
    )


def shares(title: str, items: Sequence[Share], of: str) -> list[str]:
    """A titled list of labels with counts and shares."""
    if not items:
        return []
    widest = max(len(s.text) for s in items)
    return [f"{title} (share of {of}):"] + [
        f"  {s.text:<{widest}}  {s.count:>4}  {s.share:>4.0%}" for s in items
    ]


def render_stats(stats: DatasetStats, width: int = 40) -> str:
    """The whole stats report as terminal text."""
    lines = [
        f"{stats.records} records: {stats.single_turn} single-turn, {stats.multi_turn} multi-turn; "
        f"{stats.replies} assistant replies",
        "",
        "Reply length in words: " + summary(stats.words),
        *histogram(stats.words, width),
    ]
    if stats.tokens is not None:
        lines += ["", "Reply length in tokens: " + summary(stats.tokens)]
        lines += histogram(stats.tokens, width)
    lines += [""]
    lines += shares("Failure modes", stats.failure_modes, "records")
    lines += [f"  any failure mode: {stats.failure_share:.0%} of records", ""]
    lines += shares("Tags", stats.tags[:TAGS_SHOWN], "records")
    if len(stats.tags) > TAGS_SHOWN:
        lines.append(f"  ... and {len(stats.tags) - TAGS_SHOWN} more tags")
    for title, items in (
        ("Catchphrases and markers", stats.catchphrases),
        ("Top openers", stats.openers),
        ("Top phrases", stats.phrases),
    ):
        lines += ["", *shares(title, items, "replies")]
    lines += [
        "",
        f"Duplicates: {stats.duplicate_prompts} duplicate prompts, "
        f"{stats.near_duplicate_prompts} near-duplicate prompts, "
        f"{stats.duplicate_replies} repeated replies",
    ]
    pref = stats.preference
    if pref is not None:
        lines += [
            "",
            f"Preference pairs: {pref.pairs}; preferred replies {pref.preferred_words:.1f} words "
            f"on average, non-preferred {pref.non_preferred_words:.1f}; the non-preferred reply "
            f"is the longer one in {pref.longer_non_preferred:.0%} of pairs",
            *shares("Pair tags", pref.tags, "pairs"),
            *shares("Preferred openings", pref.preferred_openers[:3], "pairs"),
            *shares("Non-preferred openings", pref.non_preferred_openers[:3], "pairs"),
        ]
    if stats.warnings:
        lines += ["", "Warnings:"] + [f"  {w}" for w in stats.warnings]
    return "\n".join(lines)
