"""The Eval screen's progress line: replies scored of the total, and the time left."""

from __future__ import annotations

from dataclasses import dataclass, field

from .train_progress import format_duration


@dataclass
class EvalClock:
    """Times an evaluation from its first poll; the rate so far gives the ETA."""

    started: float
    points: list[tuple[float, int]] = field(default_factory=list)

    def text(self, done: int, total: int, now: float) -> str:
        """`7/18 replies scored · ETA 42s` (no ETA until a reply has landed)."""
        if not total:
            return "queued: the server is starting the evaluation…"
        line = f"{done}/{total} replies scored"
        if done:
            rate = done / max(now - self.started, 1e-6)
            line += f" · ETA {format_duration((total - done) / rate)}"
        return line
