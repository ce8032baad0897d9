"""Job records on disk: one folder per job, `job.json` rewritten atomically, events beside it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Generic, TypeVar

import msgspec

from adapters.training.order import GuardRun, NewRun
from data.atomic import write_bytes
from data.card import Training

from .log import EventLog
from .types import EvalRun, FineTuningJob

log = logging.getLogger("persona.server")


class TrainSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What the trainer is started with, fixed when the job is created."""

    persona: str
    folder: str
    """The persona folder `persona train` reads (the card and the data to train on)."""
    data_files: list[str]
    """The dataset files, checked while the job is `validating_files`."""
    run: NewRun | GuardRun | None = None
    """The trainer's run, resolved when the job is created (the card, the job's settings and its
    starting checkpoint); it is written as the trainer's `--config` document at each start."""
    eval_checkpoints: bool = False
    training: Training | None = None
    """The card's `[training]` with the job's settings applied (what the data is checked with)."""


class JobRecord(msgspec.Struct, kw_only=True):
    """`job.json`: the job as clients see it, and how to run it."""

    job: FineTuningJob
    spec: TrainSpec
    resume: bool = False
    """The next start continues `job.run` from its newest checkpoint."""
    created: float = msgspec.field(default_factory=time.time)
    """Creation time to the microsecond: the queue order of jobs made in the same second."""


class EvalRecord(msgspec.Struct, kw_only=True):
    """`eval.json`: the run as clients see it, and where its inputs are."""

    run: EvalRun
    folder: str
    """The persona folder (card and training data)."""
    suite: str
    """The eval suite file."""
    created: float = msgspec.field(default_factory=time.time)
    """Creation time to the microsecond: the queue order of runs made in the same second."""


T = TypeVar("T", JobRecord, EvalRecord)


class Store(Generic[T]):
    """Records of one kind under `root/<id>/<name>`, each with its event log."""

    def __init__(self, root: Path, name: str, kind: type[T]) -> None:
        self.root = root
        self.name = name
        self.kind = kind
        self.logs: dict[str, EventLog] = {}

    def save(self, key: str, record: T) -> None:
        """Write a record atomically."""
        write_bytes(self.root / key / self.name, msgspec.json.encode(record))

    def log(self, key: str) -> EventLog:
        """The event log of one record (read from disk once)."""
        if key not in self.logs:
            self.logs[key] = EventLog(self.root / key, key.replace("ftjob", "ftevent"))
        return self.logs[key]

    def load(self) -> dict[str, T]:
        """Every readable record; an unreadable one is logged and skipped, never deleted."""
        found: dict[str, T] = {}
        if not self.root.is_dir():
            return found
        for path in sorted(self.root.glob(f"*/{self.name}")):
            try:
                found[path.parent.name] = msgspec.json.decode(path.read_bytes(), type=self.kind)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("skipping %s: %s", path, exc)
        return found
