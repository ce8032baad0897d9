"""The server's data check as the Data screen lays it out: summary, locations and records.

`GET /v1/personas/{id}/data/check` answers with the server's `DataCheck` (rows with their raw
lines, problems as file:line) and `/data/stats` with `data.stats.DatasetStats`; the TUI decodes
both with those very Structs (see `tui.wire`) and only formats them here.
"""

from __future__ import annotations

import json

from .wire import DataCheck, Problem


def location(problem: Problem) -> str:
    """`file:line`, or the file alone for whole-file problems."""
    return f"{problem.file}:{problem.line}" if problem.line else problem.file


def check_summary(check: DataCheck) -> str:
    """`N records checked: E errors, W warnings`."""
    errors = sum(p.severity == "error" for p in check.problems)
    warnings = len(check.problems) - errors
    return f"{len(check.rows)} records checked: {errors} errors, {warnings} warnings"


def record_at(check: DataCheck, file: str, line: int) -> str:
    """The record at `file:line`, laid out for reading (or why it cannot be shown)."""
    if line < 1:
        return f"{file} (the file as a whole)"
    raw = next((r.raw for r in check.rows if r.file == file and r.line == line), None)
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
