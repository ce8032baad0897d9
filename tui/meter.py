"""Measure a streamed reply: tokens, tokens per second, and the line shown under it."""

from __future__ import annotations

from dataclasses import dataclass

from .wire import PersonaGuard, ReplyPiece


@dataclass
class ReplyMeter:
    """Counts a reply's pieces as they stream in."""

    started: float
    """When the request was sent."""
    first: float | None = None
    last: float | None = None
    pieces: int = 0
    tokens: int | None = None
    """The server's count (from `usage`), once the last chunk has it."""
    adapter: str | None = None
    finish_reason: str | None = None
    guard: PersonaGuard | None = None
    """The persona guard's decision, if the persona has a guard."""

    def add(self, piece: ReplyPiece, now: float) -> None:
        """Take one streamed piece, arriving at `now`."""
        if piece.text:
            self.pieces += 1
            self.first = now if self.first is None else self.first
            self.last = now
        if piece.adapter is not None:
            self.adapter = piece.adapter
        if piece.finish_reason is not None:
            self.finish_reason = piece.finish_reason
        if piece.guard is not None:
            self.guard = piece.guard
        if piece.completion_tokens is not None:
            self.tokens = piece.completion_tokens

    @property
    def token_count(self) -> int:
        """The server's token count, else the number of text pieces received."""
        return self.tokens if self.tokens is not None else self.pieces

    def tokens_per_sec(self) -> float | None:
        """Decode speed: tokens after the first, over the time since the first arrived."""
        if self.first is None or self.last is None or self.last <= self.first:
            return None
        return max(self.token_count - 1, 0) / (self.last - self.first)


def reply_caption(
    tokens: int | None, tokens_per_sec: float | None, adapter: str | None, finish: str | None
) -> str:
    """The line under a reply: token count, speed, adapter version, and why it stopped."""
    parts = []
    if tokens is not None:
        parts.append(f"{tokens} tokens")
    if tokens_per_sec is not None:
        parts.append(f"{tokens_per_sec:.1f} tok/s")
    parts.append(f"adapter {adapter}" if adapter else "no adapter")
    if finish == "length":
        parts.append("cut at max_tokens")
    elif finish and finish != "stop":
        parts.append(finish)
    return " · ".join(parts)


GUARD_WORDS = {
    "steer": "steered this reply",
    "reply": "answered with the author's reply",
    "regenerated": "had this reply rewritten",
    "replaced": "replaced the reply with the author's",
}


def guard_marker(guard: PersonaGuard | None) -> str:
    """A short line saying what the persona guard did, or "" when it let the reply through."""
    if guard is None or guard.action not in GUARD_WORDS:
        return ""
    category = f" ({guard.category})" if guard.category else ""
    return f"guard {GUARD_WORDS[guard.action]}{category}, score {guard.score:.2f}"
