"""How a trainer event changes a job and how it reads as a `fine_tuning.job.event`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from adapters.training.events import Best, Checkpoint, Done, Event, Start, Step, Val

from .types import FineTuningJob, JobError


@dataclass(frozen=True)
class Note:
    """One job event to log."""

    message: str
    data: dict[str, Any]
    kind: Literal["message", "metrics"] = "message"
    level: Literal["info", "warn", "error"] = "info"


def apply_event(job: FineTuningJob, event: Event, train_tokens: int) -> Note:
    """Update the job from a trainer event; the event to log (its data is the trainer's own)."""
    data: dict[str, Any] = msgspec.to_builtins(event)
    if isinstance(event, Start):
        data["config"] = {}  # the whole run config is long; `run.json` keeps it
        job.run, job.persona, job.total_steps = event.run, event.persona, event.total_steps
        where = f", resuming after step {event.resumed_from}" if event.resumed_from else ""
        return Note(f"Training {event.persona}@{event.run}: {event.total_steps} steps{where}", data)
    if isinstance(event, Step):
        job.step = event.step
        job.trained_tokens = round(train_tokens * event.epoch)
        job.estimated_finish = int(time.time() + event.eta_sec)
        total = f"/{job.total_steps}" if job.total_steps else ""
        text = f"Step {event.step}{total}: training loss={event.train_loss:.4f}"
        return Note(text, data, "metrics")
    if isinstance(event, Val):
        return Note(f"Step {event.step}: validation loss={event.val_loss:.4f}", data, "metrics")
    if isinstance(event, Checkpoint):
        model_id = checkpoint_model(job, event)
        return Note(f"Checkpoint {model_id} published", data | {"model": model_id})
    if isinstance(event, Best):
        return Note(f"Step {event.step}: new best validation loss={event.val_loss:.4f}", data)
    if isinstance(event, Done):
        return Note(f"Training ended at step {event.step} ({event.reason})", data)
    return Note(f"Training error: {event.message}", data, level="error")


def checkpoint_model(job: FineTuningJob, event: Checkpoint) -> str:
    """The pinned model id of a checkpoint (`juni@run-4:150`)."""
    return f"{job.persona}@{event.version}"


def server_stopped(job: FineTuningJob) -> JobError:
    """The error of a job whose trainer ended with the server."""
    step = f" at step {job.step}" if job.step else ""
    return JobError(
        "server_stopped",
        f"the server stopped while the job was running{step}; POST "
        f"/v1/fine_tuning/jobs/{job.id}/resume continues from its newest checkpoint",
    )
