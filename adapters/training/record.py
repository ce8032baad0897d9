"""`run.json`: a training run's whole config, data and model identity, status and metrics.

Pure msgspec (no mlx) so the server and the TUI can read it. The trainer rewrites it atomically
as metrics arrive; keys other tools add (the evaluator's `eval` scores) are carried over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from data.atomic import write_bytes

from .config import RunConfig
from .events import DatasetInfo

RUN_FILE = "run.json"
Status = Literal["training", "done", "stopped", "failed"]


class MetricPoint(msgspec.Struct, frozen=True, omit_defaults=True):
    """Losses at one step (train loss every step; val loss when validated)."""

    step: int
    train_loss: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    tokens_per_sec: float | None = None


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The content of `run.json`."""

    persona: str
    run: str
    status: Status
    config: RunConfig
    base_model: str
    base_model_id: str
    base_hash: str
    dataset: DatasetInfo
    total_steps: int
    created: float
    updated: float
    step: int = 0
    best_step: int | None = None
    best_val_loss: float | None = None
    reason: str | None = None
    """Why training ended: `finished`, `early_stop`, `stopped`, or the error."""
    metrics: tuple[MetricPoint, ...] = ()


def read_record(run_dir: Path) -> RunRecord:
    """Decode a run's `run.json` (raises OSError or msgspec errors)."""
    return msgspec.json.decode((run_dir / RUN_FILE).read_bytes(), type=RunRecord)


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    # The trainer and the evaluator both read, merge and rewrite run.json; one at a time.
    with (run_dir / ".record.lock").open("wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def write_record(run_dir: Path, record: RunRecord) -> None:
    """Atomically replace `run.json`, keeping keys other tools added to it."""
    payload: dict[str, Any] = msgspec.to_builtins(record)
    with _exclusive(run_dir):
        try:
            existing = json.loads((run_dir / RUN_FILE).read_text())
        except (OSError, ValueError):
            existing = {}
        if isinstance(existing, dict):
            for key, value in existing.items():
                payload.setdefault(key, value)
        write_bytes(run_dir / RUN_FILE, json.dumps(payload, indent=2).encode())


def store_eval(run_dir: Path, step: int, scores: dict[str, float]) -> None:
    """Merge one checkpoint's scores into `run.json` under `eval.<step>` (atomic)."""
    path = run_dir / RUN_FILE
    with _exclusive(run_dir):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {}
        evals = record.setdefault("eval", {})
        evals[str(step)] = {**scores, "time": round(time.time(), 3)}
        write_bytes(path, json.dumps(record, indent=2).encode())
