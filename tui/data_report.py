"""The server's data check and stats as the Data screen reads them: lenient msgspec views.

`GET /v1/personas/{id}/data/check` returns the checker's `CheckReport` (rows with their raw
lines, problems as file:line) and `/data/stats` the `DatasetStats`; files are named relative to
the persona folder on the server.
"""

from __future__ import annotations

import json

import msgspec


class ProblemView(msgspec.Struct, frozen=True):
    """One reported problem: where, how bad, what."""

    file: str
    line: int = 0
    severity: str = "error"
    message: str = ""

    @property
    def location(self) -> str:
        """`file:line`, or the file alone for whole-file problems."""
        return f"{self.file}:{self.line}" if self.line else self.file


class RowView(msgspec.Struct, frozen=True):
    """A record the checker could read, by file and line, as written."""

    file: str
    line: int
    raw: str = ""


class CheckView(msgspec.Struct, frozen=True):
    """`persona data check` of one persona, from the server."""

    files: list[str] = []
    rows: list[RowView] = []
    problems: list[ProblemView] = []
    notes: list[str] = []

    def summary(self) -> str:
        """`N records checked: E errors, W warnings`."""
        errors = sum(p.severity == "error" for p in self.problems)
        warnings = len(self.problems) - errors
        return f"{len(self.rows)} records checked: {errors} errors, {warnings} warnings"

    def record_at(self, file: str, line: int) -> str:
        """The record at `file:line`, laid out for reading (or why it cannot be shown)."""
        if line < 1:
            return f"{file} (the file as a whole)"
        raw = next((r.raw for r in self.rows if r.file == file and r.line == line), None)
        if raw is None:
            return f"{file}:{line} could not be read as a record (see the problem)"
        return record_text(raw)


def record_text(raw: str) -> str:
    """A JSONL record as its turns, one paragraph each, then its tags."""
    try:
        record = json.loads(raw)
    except ValueError:
        return raw.rstrip()
    if isinstance(record, dict) and isinstance(record.get("messages"), list):
        parts = [
            f"{m.get('role', '?')}: {m.get('content', '')}"
            for m in record["messages"]
            if isinstance(m, dict)
        ]
        if record.get("tags"):
            parts.append(f"tags: {', '.join(map(str, record['tags']))}")
        return "\n\n".join(parts)
    return json.dumps(record, indent=2, ensure_ascii=False)


class BandView(msgspec.Struct, frozen=True):
    """One histogram band."""

    low: int
    high: int
    count: int


class LengthsView(msgspec.Struct, frozen=True):
    """Reply lengths in one unit."""

    unit: str = "words"
    count: int = 0
    min: int = 0
    max: int = 0
    mean: float = 0.0
    median: float = 0.0
    cv: float = 0.0
    histogram: list[BandView] = []


class ShareView(msgspec.Struct, frozen=True):
    """A label, its count and its share."""

    text: str
    count: int = 0
    share: float = 0.0


class StatsView(msgspec.Struct, frozen=True):
    """The parts of `persona data stats` the Data screen shows."""

    records: int = 0
    single_turn: int = 0
    multi_turn: int = 0
    replies: int = 0
    words: LengthsView = LengthsView()
    tokens: LengthsView | None = None
    tags: list[ShareView] = []
    failure_modes: list[ShareView] = []
    failure_share: float = 0.0
    openers: list[ShareView] = []
    phrases: list[ShareView] = []
    catchphrases: list[ShareView] = []
    duplicate_prompts: int = 0
    near_duplicate_prompts: int = 0
    duplicate_replies: int = 0
    warnings: list[str] = []
