"""An evaluation result as the Eval screen reads it: lenient views of the CLI's `EvalResult`."""

from __future__ import annotations

from collections.abc import Callable

import msgspec


class LengthView(msgspec.Struct, frozen=True):
    """Reply lengths against the card's range."""

    mean: float = 0.0
    cv: float = 0.0
    in_range: float = 0.0
    ks: float | None = None


class MarkersView(msgspec.Struct, frozen=True):
    """How often the persona's voice shows."""

    catchphrase_rate: float = 0.0
    marker_rate: float = 0.0
    banned_rate: float = 0.0


class MemoView(msgspec.Struct, frozen=True):
    """How much was copied from the training data."""

    share: float = 0.0
    longest: int = 0


class ModelScore(msgspec.Struct, frozen=True):
    """One model's scores over the suite."""

    model: str
    replies: int = 0
    errors: int = 0
    score: float = 0.0
    completion_rate: float = 0.0
    looping_rate: float = 0.0
    distinct_2: float = 0.0
    criteria_pass: float = 0.0
    judge: float | None = None
    length: LengthView = LengthView()
    markers: MarkersView = MarkersView()
    memorisation: MemoView = MemoView()
    by_category: dict[str, float] = {}
    adapter: str | None = None
    echo_rate: float = 0.0


class Criteria(msgspec.Struct, frozen=True):
    """Whether a reply met its case's rules, and which it broke."""

    passed: bool = False
    failures: list[str] = []


class EvalSample(msgspec.Struct, frozen=True):
    """One reply to one case."""

    case_id: str
    model: str
    category: str = ""
    text: str = ""
    finish_reason: str = ""
    words: int = 0
    criteria: Criteria = Criteria()
    adapter: str | None = None
    error: str | None = None
    turn: int = 0
    """In a drift conversation, the 1-based turn index (0 for a single probe)."""

    @property
    def label(self) -> str:
        """The case id, with the turn for a drift reply."""
        return f"{self.case_id} turn {self.turn}" if self.turn else self.case_id


class TurnView(msgspec.Struct, frozen=True):
    """Persona metrics at one turn index of the drift conversations."""

    turn: int
    marker_rate: float = 0.0
    catchphrase_rate: float = 0.0
    criteria_pass: float = 0.0
    length_in_range: float = 0.0
    echo_rate: float = 0.0


class DriftView(msgspec.Struct, frozen=True):
    """One model's metrics per turn, and their change from the first turn to the last."""

    model: str
    turns: list[TurnView] = []
    change: dict[str, float] = {}


class EvalReport(msgspec.Struct, frozen=True):
    """The parts of `persona eval --json` the TUI shows."""

    persona: str
    models: list[ModelScore] = []
    samples: list[EvalSample] = []
    turns: int = 0
    drift: list[DriftView] = []
    """Per-turn metrics of `--turns` conversations (empty when none were run)."""
    drift_samples: list[EvalSample] = []
    """Every reply of the drift conversations."""


METRICS: tuple[tuple[str, Callable[[ModelScore], float | None]], ...] = (
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


def metric_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
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
