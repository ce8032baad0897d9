"""An evaluation result as the Eval screen lays it out: the metrics of each model side by side.

The server's eval run carries the `EvalResult` that `persona eval --json` writes; the TUI
decodes it with that very Struct (`data.eval.run.EvalResult`, see `tui.wire`).
"""

from __future__ import annotations

from collections.abc import Callable

from .wire import EvalResult, ModelScores

METRICS: tuple[tuple[str, Callable[[ModelScores], float | None]], ...] = (
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
    ("score (keyword aggregate)", lambda m: m.score),
)
"""(label, getter) of each row after the headline rows."""


def metric_rows(report: EvalResult) -> tuple[list[str], list[list[str]]]:
    """Column titles (one per model) and the rows: contrast accuracy and gold perplexity per
    category first, then rule pass per category, completion and the style share, then the rest."""
    names = list(dict.fromkeys([*(c.model for c in report.contrast),
                                *(m.model for m in report.models)]))  # fmt: skip
    pairs = {c.model: c for c in report.contrast}
    sampled = {m.model: m for m in report.models}
    rows: list[list[str]] = []
    kinds = sorted({k for c in report.contrast for k in c.by_category})
    for category in [*kinds, "all"] if report.contrast else []:
        parts = [
            None if n not in pairs else
            pairs[n].overall if category == "all" else pairs[n].by_category.get(category)
            for n in names
        ]  # fmt: skip
        rows.append(
            [
                f"contrast: {category}",
                *["-" if p is None or not p.pairs else f"{p.accuracy:.2f}" for p in parts],
            ]
        )
        rows.append([f"gold ppl: {category}", *[
            "-" if p is None or p.gold_perplexity is None else f"{p.gold_perplexity:.1f}"
            for p in parts
        ]])  # fmt: skip
    categories = sorted({c for m in report.models for c in m.by_category})
    for category in categories:
        rows.append([f"pass: {category}",
                     *[_fmt(_get(sampled, n, lambda m, c=category: m.by_category.get(c)))
                       for n in names]])  # fmt: skip
    if report.models:
        rows.append(["criteria pass", *[_fmt(_get(sampled, n, lambda m: m.criteria_pass))
                                        for n in names]])  # fmt: skip
        rows.append(["completed (stop)", *[_fmt(_get(sampled, n, lambda m: m.completion_rate))
                                           for n in names]])  # fmt: skip
        rows.append(["style share", *[_style(sampled.get(n)) for n in names]])
    rows += [[label, *[_fmt(_get(sampled, n, get)) for n in names]] for label, get in METRICS]
    return ["metric", *names], rows


def _get(
    sampled: dict[str, ModelScores], name: str, get: Callable[[ModelScores], float | None]
) -> float | None:
    return get(sampled[name]) if name in sampled else None


def _style(scores: ModelScores | None) -> str:
    if scores is None or not scores.openings.top:
        return "-"
    return f"{scores.openings.share:.2f} {scores.openings.top}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2f}"
