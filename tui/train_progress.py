"""Fold training events into what the Train screen shows: progress, loss curves, checkpoints.

The events are the trainer's own Structs (pure msgspec), carried in each job event's `data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from adapters.training.events import Best as BestEvent
from adapters.training.events import Checkpoint as CheckpointEvent
from adapters.training.events import Done as DoneEvent
from adapters.training.events import Error as ErrorEvent
from adapters.training.events import Event as TrainEvent
from adapters.training.events import Start as StartEvent
from adapters.training.events import Step as StepEvent
from adapters.training.events import Val as ValEvent
from adapters.training.events import format_duration
from server.jobs.types import JobEvent

__all__ = [
    "BestEvent",
    "CheckpointEvent",
    "DoneEvent",
    "ErrorEvent",
    "StartEvent",
    "StepEvent",
    "TrainEvent",
    "ValEvent",
    "format_duration",
    "trainer_event",
]


def trainer_event(event: JobEvent) -> TrainEvent | None:
    """The trainer event a job event carries, if it carries one."""
    if not event.data or "event" not in event.data:
        return None
    try:
        return msgspec.convert(event.data, TrainEvent)
    except msgspec.ValidationError:
        return None


@dataclass
class CheckpointRow:
    """One checkpoint as the table lists it."""

    step: int
    version: str
    val_loss: float | None = None
    best: bool = False
    live: bool = False
    """The server reported it loaded."""


@dataclass
class TrainProgress:
    """Everything known about one training run so far."""

    run: str = ""
    persona: str = ""
    total_steps: int = 0
    step: int = 0
    epoch: float = 0.0
    tokens_per_sec: float = 0.0
    eta_sec: float | None = None
    train_points: list[tuple[int, float]] = field(default_factory=list)
    val_points: list[tuple[int, float]] = field(default_factory=list)
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    state: str = "idle"
    """`idle`, `starting` (the job exists, the trainer is loading), `running`, `done` or
    `failed`."""
    message: str = ""
    """How it ended (the done reason or the error)."""
    live: set[str] = field(default_factory=set)
    """Versions the server reported loaded (the report can beat the trainer's own event)."""

    def apply(self, event: TrainEvent) -> None:
        """Take one event into account."""
        if isinstance(event, StartEvent):
            self.run, self.persona = event.run, event.persona
            self.total_steps, self.state = event.total_steps, "running"
        elif isinstance(event, StepEvent):
            self.step, self.epoch = event.step, event.epoch
            self.tokens_per_sec, self.eta_sec = event.tokens_per_sec, event.eta_sec
            self.train_points.append((event.step, event.train_loss))
        elif isinstance(event, ValEvent):
            self.val_points.append((event.step, event.val_loss))
            for row in self.checkpoints:
                if row.step == event.step:
                    row.val_loss = event.val_loss
        elif isinstance(event, CheckpointEvent):
            version = event.version or f"{self.run}:{event.step}"
            val = dict(self.val_points).get(event.step)
            self.checkpoints.append(
                CheckpointRow(event.step, version, val, live=version in self.live)
            )
        elif isinstance(event, BestEvent):
            for row in self.checkpoints:
                row.best = row.step == event.step
        elif isinstance(event, DoneEvent):
            self.state, self.message = "done", event.reason or "finished"
            self.step = max(self.step, event.step)
            self.eta_sec = 0.0
        elif isinstance(event, ErrorEvent):
            self.state, self.message = "failed", event.message

    def starting(self, persona: str, job_id: str, status: str) -> None:
        """A job was just created: say so until the trainer's first event arrives."""
        self.persona, self.state = persona, "starting"
        self.message = f"job {job_id} {status}; loading the model and the data…"

    def mark_live(self, version: str) -> bool:
        """Note that the server hot-loaded a version; True if it belongs to this run."""
        if not self.run or not version.startswith(f"{self.run}:"):
            return False
        self.live.add(version)
        for row in self.checkpoints:
            if row.version == version:
                row.live = True
        return True

    @property
    def last_train_loss(self) -> float | None:
        """The newest training loss."""
        return self.train_points[-1][1] if self.train_points else None

    @property
    def last_val_loss(self) -> float | None:
        """The newest validation loss."""
        return self.val_points[-1][1] if self.val_points else None

    def summary(self) -> str:
        """Two lines: run, step, epoch and time left; then losses and speed."""
        if self.state == "idle":
            return "Not training. Pick a persona, adjust the settings, then Ctrl+S to start."
        if self.state == "starting":
            return f"{self.persona}: {self.message}"
        total = f"/{self.total_steps}" if self.total_steps else ""
        where = [
            f"{self.persona} {self.run}".strip(),
            f"step {self.step}{total}",
            f"epoch {self.epoch:.2f}",
        ]
        if self.state == "running":
            where.append(f"ETA {format_duration(self.eta_sec)}")
        else:
            where.append(f"{self.state}: {self.message}")
        how = []
        if self.last_train_loss is not None:
            how.append(f"train loss {self.last_train_loss:.3f}")
        if self.last_val_loss is not None:
            how.append(f"val loss {self.last_val_loss:.3f}")
        if self.tokens_per_sec:
            how.append(f"{self.tokens_per_sec:.0f} tok/s")
        return " · ".join(where) + ("\n" + " · ".join(how) if how else "")
