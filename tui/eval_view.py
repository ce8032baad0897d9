"""An evaluation result as the Eval screen lays it out: the metrics of each model side by side.

The server's eval run carries the `EvalResult` that `persona eval --json` writes; the TUI
decodes it with that very Struct (`data.evaluate.EvalResult`, see `tui.wire`).
"""

from __future__ import annotations

from collections.abc import Callable

from .wire import EvalResult, ModelScores

METRICS: tuple[tuple[str, Callable[[ModelScores], float | None]], ...] = (
    ("score (0-1)", lambda m: m.score),
    ("completed (stop)", lambda m: m.completion_rate),
    ("criteria pass", lambda m: m.criteria_pass),
    ("length in range", lambda m: m.length.in_range),
    ("length mean (words)", lambda m: m.length.mean),
    ("length KS vs training", lambda m: m.length.ks),
    ("looping", lambda m: m.looping_rate),
    ("distinct-2", lambda m: m.distinct_2),
    ("memorised (8-gram)", lambda m: m.memorisation.share),
    ("catchphrase rate", lambda m: m.markers.catchphrase_rate),
    ("voice marker rate", lambda m: m.markers.marker_rate),
    ("banned phrases", lambda m: m.markers.banned_rate),
    ("echo (system/user)", lambda m: m.echo_rate),
    ("judge", lambda m: m.judge),
)
"""(label, getter) of each row of the side-by-side table."""


def metric_rows(report: EvalResult) -> tuple[list[str], list[list[str]]]:
    """Column titles (one per model) and a row per metric, then per category."""
    columns = ["metric", *[m.model for m in report.models]]
    rows = [[label, *[_fmt(get(m)) for m in report.models]] for label, get in METRICS]
    categories = sorted({c for m in report.models for c in m.by_category})
    rows += [
        [f"pass: {c}", *[_fmt(m.by_category.get(c)) for m in report.models]] for c in categories
    ]
    return columns, rows


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2f}"
