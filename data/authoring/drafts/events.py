"""What `persona data draft --json` prints, one JSON object per line, and the TUI can read."""

from __future__ import annotations

import msgspec

from .gaps import DraftTarget


class Start(msgspec.Struct, frozen=True, tag="start"):
    """Drafting began: how many drafts are wanted and the gaps they fill."""

    persona: str
    teacher: str
    count: int
    gaps: tuple[str, ...]


class Drafted(msgspec.Struct, frozen=True, tag="draft"):
    """One answer from the teacher: kept (with its draft id) or dropped (with the reason)."""

    index: int
    target: DraftTarget
    kept: bool
    id: str | None = None
    reason: str | None = None


class Failed(msgspec.Struct, frozen=True, tag="error"):
    """Drafting stopped; drafts already written stay."""

    message: str


class Done(msgspec.Struct, frozen=True, tag="done"):
    """Drafting finished: what was kept, dropped, and where it went."""

    kept: int
    dropped: int
    file: str


DraftEvent = Start | Drafted | Failed | Done
