"""Render eval results: a terminal table, markdown, JSON, and side-by-side deltas.

Every report leads with what a keyword metric cannot fake: contrast-pair accuracy per category
and the perplexity of the gold replies (both teacher-forced, no sampling), then the category
rules' pass rates, completion and the style share (replies opening with the same three words).
The aggregate score and the other sampled metrics follow; the score is never the headline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from .contrast import CategoryContrast, ContrastScores
from .metrics import DRIFT_METRICS, OPENING_SHARE
from .run import EvalResult, ModelScores

Row = tuple[str, Callable[[ModelScores], float | None], bool]
"""(label, getter, higher_is_better)."""

ROWS: tuple[Row, ...] = (
    ("score", lambda m: m.score, True),
    ("completion (stop, not length)", lambda m: m.completion_rate, True),
    ("length in card range", lambda m: m.length.in_range, True),
    ("length mean (words)", lambda m: m.length.mean, True),
    ("length CV", lambda m: m.length.cv, True),
    ("length KS vs training", lambda m: m.length.ks, False),
    ("looping replies", lambda m: m.looping_rate, False),
    ("distinct-2", lambda m: m.distinct_2, True),
    ("memorised (8-gram)", lambda m: m.memorisation.share, False),
    ("longest copied span", lambda m: float(m.memorisation.longest), False),
    ("catchphrase rate", lambda m: m.markers.catchphrase_rate, True),
    ("voice marker rate", lambda m: m.markers.marker_rate, True),
    ("banned phrases", lambda m: m.markers.banned_rate, False),
    ("echo (system prompt or user)", lambda m: m.echo_rate, False),
    ("system-prompt echo", lambda m: m.system_echo_rate, False),
    ("criteria pass", lambda m: m.criteria_pass, True),
    ("judge (0-1)", lambda m: m.judge, True),
)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2f}"


def _delta(value: float | None, base: float | None) -> str:
    if value is None or base is None:
        return ""
    diff = value - base
    return f" ({diff:+.2f})" if abs(diff) < 10 else f" ({diff:+.0f})"


def table_rows(result: EvalResult) -> list[list[str]]:
    """Metric rows with one column per model; later models show deltas against the first."""
    models = result.models
    categories = sorted({c for m in models for c in m.by_category})
    rows = [["metric", *[m.model for m in models]]]
    getters: list[tuple[str, Callable[[ModelScores], float | None]]] = [
        (label, get) for label, get, _ in ROWS
    ]
    getters += [(f"criteria: {c}", _category(c)) for c in categories]
    for label, get in getters:
        first = get(models[0]) if models else None
        cells = [_fmt(get(m)) + (_delta(get(m), first) if i else "") for i, m in enumerate(models)]
        rows.append([label, *cells])
    return rows


def _category(name: str) -> Callable[[ModelScores], float | None]:
    return lambda m: m.by_category.get(name)


def _pairs(part: CategoryContrast | None) -> str:
    if part is None or not part.pairs:
        return "-"
    return f"{part.accuracy:.2f} ({part.won}/{part.pairs})"


def _perplexity(part: CategoryContrast | None) -> str:
    value = part.gold_perplexity if part is not None else None
    return "-" if value is None else f"{value:.1f}"


def headline_rows(result: EvalResult) -> list[list[str]]:
    """The lead table, one column per model: contrast accuracy and gold perplexity per
    category, then rule pass rates per category, completion and the style share."""
    names = list(dict.fromkeys([*(c.model for c in result.contrast),
                                *(m.model for m in result.models)]))  # fmt: skip
    contrast: dict[str, ContrastScores] = {c.model: c for c in result.contrast}
    sampled: dict[str, ModelScores] = {m.model: m for m in result.models}
    rows = [["headline", *names]]
    if result.contrast:
        categories = sorted({k for c in result.contrast for k in c.by_category})
        for label, cell in (("contrast accuracy", _pairs), ("gold perplexity", _perplexity)):
            for category in [*categories, "all"]:
                rows.append([f"{label}: {category}", *[
                    cell(None if n not in contrast else
                         contrast[n].overall if category == "all"
                         else contrast[n].by_category.get(category))
                    for n in names
                ]])  # fmt: skip
    if result.models:
        categories = sorted({c for m in result.models for c in m.by_category})
        for category in categories:
            rows.append([f"rules pass: {category}", *[
                _fmt(sampled[n].by_category.get(category)) if n in sampled else "-" for n in names
            ]])  # fmt: skip
        rows.append(
            [
                "rules pass: all",
                *[_fmt(sampled[n].criteria_pass) if n in sampled else "-" for n in names],
            ]
        )
        rows.append(
            [
                "completion (stop, not length)",
                *[_fmt(sampled[n].completion_rate) if n in sampled else "-" for n in names],
            ]
        )
        rows.append(["style share (top opening)", *[_opening(sampled.get(n)) for n in names]])
    return rows


def _opening(scores: ModelScores | None) -> str:
    if scores is None or not scores.openings.top:
        return "-"
    flag = " !" if scores.openings.share > OPENING_SHARE else ""
    return f"{scores.openings.share:.2f} {scores.openings.top!r}{flag}"


def opening_flags(result: EvalResult) -> list[str]:
    """One line per model and over-used opening (more than OPENING_SHARE of its replies)."""
    return [
        f"{m.model}: {share:.0%} of replies open with {opening!r}"
        for m in result.models
        for opening, share in sorted(m.openings.flagged.items(), key=lambda item: -item[1])
    ]


DRIFT_LABELS = {
    "marker_rate": "voice markers",
    "catchphrase_rate": "catchphrases",
    "banned_rate": "banned phrases",
    "criteria_pass": "criteria pass",
    "length_in_range": "length in range",
    "echo_rate": "echo",
    "completion_rate": "completion",
}


def drift_rows(result: EvalResult) -> list[list[str]]:
    """Per model and metric: the value at each turn, then the change first -> last and the
    slope per turn. Empty when no drift conversations were run."""
    if not result.drift:
        return []
    turns = result.turns or max(len(d.turns) for d in result.drift)
    rows = [["model", "metric", *[f"t{i}" for i in range(1, turns + 1)], "change", "slope"]]
    for d in result.drift:
        for metric in DRIFT_METRICS:
            values = [f"{getattr(t, metric):.2f}" for t in d.turns]
            rows.append([d.model, DRIFT_LABELS[metric], *values,
                         f"{d.change[metric]:+.2f}", f"{d.slope[metric]:+.3f}"])  # fmt: skip
    return rows


def _fixed(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def terminal_table(result: EvalResult) -> str:
    """The headline table, then the other metrics and the drift table, fixed-width."""
    lines = _fixed(headline_rows(result))
    lines += [f"  over-used opening: {flag}" for flag in opening_flags(result)]
    if result.models:
        lines += ["", "Other metrics (the score is a keyword aggregate, not a verdict):"]
        lines += _fixed(table_rows(result))
    drift = drift_rows(result)
    if drift:
        lines += ["", f"Drift over {result.turns}-turn conversations:", *_fixed(drift)]
    if result.models:
        lines.append(
            f"\n{len(result.samples)} replies, {result.samples_per_prompt} per prompt, "
            f"seed {result.seed}; judge: {result.models[0].judge_status}"
        )
    if result.contrast_replies:
        lines.append(f"{len(result.contrast_replies)} contrast replies scored (teacher-forced)")
    return "\n".join(lines)


def markdown(result: EvalResult, examples: int = 3) -> str:
    """A markdown report: the comparison table, then failing replies per model."""
    out = [f"# Eval: {result.persona}", ""]
    head = headline_rows(result)
    out.append("| " + " | ".join(head[0]) + " |")
    out.append("|" + "---|" * len(head[0]))
    out += ["| " + " | ".join(row) + " |" for row in head[1:]]
    out += [f"- over-used opening: {flag}" for flag in opening_flags(result)]
    if result.models:
        rows = table_rows(result)
        out += ["", "## Other metrics", ""]
        out.append("| " + " | ".join(rows[0]) + " |")
        out.append("|" + "---|" * len(rows[0]))
        out += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    drift = drift_rows(result)
    if drift:
        out += ["", f"## Drift over {result.turns}-turn conversations", ""]
        out.append("| " + " | ".join(drift[0]) + " |")
        out.append("|" + "---|" * len(drift[0]))
        out += ["| " + " | ".join(row) + " |" for row in drift[1:]]
    for model in result.models:
        failing = [s for s in result.samples if s.model == model.model and not s.criteria.passed][
            :examples
        ]
        if not failing:
            continue
        out += ["", f"## {model.model}: failing replies (first {len(failing)})", ""]
        for s in failing:
            reasons = "; ".join(s.criteria.failures)
            text = s.text.replace("\n", " ")[:300]
            out.append(f"- `{s.case_id}` ({s.category}): {reasons}\n  > {text}")
    return "\n".join(out) + "\n"


def to_json(result: EvalResult) -> bytes:
    """The whole result as indented JSON."""
    return msgspec.json.format(msgspec.json.encode(result), indent=2)


def from_json(payload: bytes) -> EvalResult:
    """Read a result written by `to_json`."""
    return msgspec.json.decode(payload, type=EvalResult)


def summary(scores: ModelScores, contrast: ContrastScores | None = None) -> dict[str, float]:
    """The compact per-checkpoint scores stored in a run's run.json (contrast first, if any)."""
    lead: dict[str, float] = {}
    if contrast is not None and contrast.overall.pairs:
        lead["contrast"] = round(contrast.overall.accuracy, 4)
        if contrast.overall.gold_perplexity is not None:
            lead["gold_perplexity"] = round(contrast.overall.gold_perplexity, 3)
    return lead | {
        "style_share": round(scores.openings.share, 4),
        "score": round(scores.score, 4),
        "completion": round(scores.completion_rate, 4),
        "length_in_range": round(scores.length.in_range, 4),
        "looping": round(scores.looping_rate, 4),
        "memorised": round(scores.memorisation.share, 4),
        "voice": round(scores.markers.marker_rate, 4),
        "criteria": round(scores.criteria_pass, 4),
        "echo": round(scores.echo_rate, 4),
    }


def merge_results(results: Sequence[EvalResult]) -> EvalResult:
    """Combine results of the same persona into one side-by-side comparison."""
    first = results[0]
    return msgspec.structs.replace(
        first,
        models=[m for r in results for m in r.models],
        contrast=[c for r in results for c in r.contrast],
        contrast_replies=[s for r in results for s in r.contrast_replies],
        samples=[s for r in results for s in r.samples],
        drift=[d for r in results for d in r.drift],
        drift_samples=[s for r in results for s in r.drift_samples],
    )
