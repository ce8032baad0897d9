"""Run `persona data check` and `persona data stats --json`, and read their output."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from .api import ApiError
from .commands import missing_subcommand, run_command


@dataclass(frozen=True)
class ProblemLine:
    """One reported problem: where, how bad, what."""

    file: str
    line: int
    severity: str
    message: str

    @property
    def location(self) -> str:
        """`file:line`, or the file alone for whole-file problems."""
        return f"{self.file}:{self.line}" if self.line else self.file


_PROBLEM = re.compile(r"^(?P<file>.+?\.(?:jsonl|toml|json))(?::(?P<line>\d+))?: (?P<rest>.*)$")


def parse_problems(stdout: str) -> list[ProblemLine]:
    """Problems from `persona data check` output (`file:line: [warning: ]message`)."""
    found = []
    for text in stdout.split("\n"):
        match = _PROBLEM.match(text.strip())
        if not match:
            continue
        rest = match.group("rest")
        severity = "warning" if rest.startswith("warning: ") else "error"
        found.append(
            ProblemLine(
                match.group("file"),
                int(match.group("line") or 0),
                severity,
                rest.removeprefix("warning: "),
            )
        )
    return found


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
    """The parts of `persona data stats --json` the Data screen shows."""

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


@dataclass(frozen=True)
class CheckOutcome:
    """Problems found, and the summary line the command printed."""

    problems: list[ProblemLine]
    summary: str


async def run_check(base: Sequence[str], persona: str) -> CheckOutcome:
    """`persona data check PERSONA`; an exit code of 1 only means the data has errors."""
    try:
        result = await run_command(
            [*base, "data", "check", persona], title="Check failed", ok_codes=(0, 1)
        )
    except ApiError as error:
        if missing_subcommand(error.message, "data"):
            raise ApiError(
                "Data checks are not available", "this installation has no `persona data` command"
            ) from None
        raise
    stdout = result.stdout.decode("utf-8", errors="replace")
    lines = result.stderr.splitlines()
    summary = next((s for s in reversed(lines) if "records checked" in s), "")
    return CheckOutcome(parse_problems(stdout), summary)


async def run_stats(base: Sequence[str], persona: str) -> StatsView:
    """`persona data stats PERSONA --json`, first dataset group."""
    result = await run_command([*base, "data", "stats", persona, "--json"], title="Stats failed")
    # JSON lines end at b"\n" alone; see `sse_lines` for why never splitlines().
    for line in result.stdout.split(b"\n"):
        if line.strip().startswith(b"{"):
            try:
                return msgspec.json.decode(line, type=StatsView)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ApiError("Stats failed", f"unreadable stats: {exc}") from None
    raise ApiError("Stats failed", result.stderr or "the stats command printed nothing")


def read_record(file: str, line: int) -> str:
    """The record at `file:line`, laid out for reading (or why it cannot be shown)."""
    if line < 1:
        return f"{file} (the file as a whole)"
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        return f"cannot read {file}: {exc.strerror}"
    # Count lines as the checker does: `\n` alone ends one, never U+2028 inside a string.
    chunks = data.split(b"\n")
    if line > len(chunks) or (line == len(chunks) and not chunks[-1]):
        return f"{file} has fewer than {line} lines"
    text = chunks[line - 1].removesuffix(b"\r").decode("utf-8", errors="replace")
    try:
        record = json.loads(text)
    except ValueError:
        return text.rstrip()
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
