"""The fine-tuning job service: one queue, one trainer child process at a time, state on disk.

A job goes `validating_files` -> `queued` -> `running` -> `succeeded` | `failed` | `cancelled`
(and `paused` <-> `queued` through pause and resume). Every change is written to `job.json`
atomically before anyone is told, so a restart finds each job where it was; a job that was
running when the server went away is marked failed, resumable from its newest checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

from adapters.registry import Registry
from adapters.training.events import Checkpoint, Done, Error, Event, Start, Step
from adapters.training.order import GuardRun, NewRun, ResumeRun, TrainOrder
from data.card import load_card
from data.check import check_dataset
from data.problem import listed
from data.tokens import ChatTokenizer

from .files import FileStore, new_id
from .log import EventLog
from .progress import apply_event, checkpoint_model, server_stopped
from .results import metrics_csv
from .store import JobRecord, Store, TrainSpec
from .trainer import TrainerProcess, train_command, write_order
from .types import FINISHED, FineTuningJob, JobError

log = logging.getLogger("persona.server")

STOP_SECONDS = 60.0
"""How long a shutdown waits for the trainer to finish its step and publish a checkpoint."""
NO_RUN = "the job holds no trainer settings (it was created by an older server); create it again"
"""Why a queued job whose record predates `TrainSpec.run` cannot start."""
SAVE_EVERY = 1.0
"""Seconds between writes of `job.json` while steps stream in (status changes write at once)."""


class JobStateError(ValueError):
    """The job is not in a state that allows this action (a 400 for the client)."""


@dataclass(frozen=True)
class TrainerSetup:
    """What every trainer of this server is started with."""

    adapters: str
    """The adapter registry every run publishes into."""


OnCheckpoint = Callable[[FineTuningJob, str], Awaitable[None]]
"""Called with the job and the pinned model id of each checkpoint (for server-side evals)."""


class JobService:
    """Creates, runs, steers and remembers fine-tuning jobs."""

    def __init__(
        self,
        root: Path,
        setup: TrainerSetup,
        files: FileStore,
        *,
        tokenizer: Callable[[], ChatTokenizer | None] = lambda: None,
        refresh: Callable[[str], Awaitable[None]] | None = None,
        on_checkpoint: OnCheckpoint | None = None,
    ) -> None:
        self.store: Store[JobRecord] = Store(root, "job.json", JobRecord)
        self.setup = setup
        self.files = files
        self.tokenizer = tokenizer
        self.refresh = refresh
        """Makes the adapter service see a persona's newest checkpoints (before `succeeded`)."""
        self.on_checkpoint = on_checkpoint
        self.records: dict[str, JobRecord] = {}
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._validators: set[asyncio.Task[None]] = set()
        self._trainer: tuple[str, TrainerProcess] | None = None
        self._intent: dict[str, str] = {}
        """Why a running trainer was asked to stop: `cancel`, `pause` or `shutdown`."""
        self._saved = 0.0
        self._closing = False

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Load every job; mark those cut short by the last shutdown; start the worker."""
        self.records = self.store.load()
        for record in self.records.values():
            job = record.job
            if job.status == "running":
                self._finish(record, "failed", server_stopped(job))
            elif job.status == "validating_files":
                self._validate_later(record)
            elif job.status in FINISHED:
                self.log(job.id).close()
        self._worker = asyncio.create_task(self._work(), name="fine-tuning-jobs")

    async def aclose(self) -> None:
        """Stop the trainer after its step (it keeps a checkpoint), record that, stop the worker."""
        self._closing = True
        if self._trainer is not None:
            job_id, trainer = self._trainer
            self._intent[job_id] = "shutdown"
            trainer.stop()
            if self._worker is not None:
                # The worker reads the trainer's last events and records the job as stopped.
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(self._worker), STOP_SECONDS)
        for task in [self._worker, *self._validators]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ----------------------------------------------------------------- reading

    def get(self, job_id: str) -> JobRecord:
        """One job's record; KeyError when unknown."""
        return self.records[job_id]

    def jobs(self) -> list[FineTuningJob]:
        """Every job, newest first."""
        found = sorted(self.records.values(), key=lambda r: r.created, reverse=True)
        return [r.job for r in found]

    def log(self, job_id: str) -> EventLog:
        """A job's events."""
        return self.store.log(job_id)

    # ----------------------------------------------------------------- steering

    def create(self, job: FineTuningJob, spec: TrainSpec) -> FineTuningJob:
        """Record a new job and check its files in the background; it is queued once they pass."""
        record = JobRecord(job=job, spec=spec)
        self.records[job.id] = record
        self._save(record)
        self.log(job.id).add(f"Created fine-tuning job: {job.id}", data={"status": job.status})
        self._validate_later(record)
        return job

    def cancel(self, job_id: str) -> FineTuningJob:
        """Stop a job for good: at once when not running, else after the trainer's current step."""
        record = self.get(job_id)
        status = record.job.status
        if status in FINISHED:
            raise JobStateError(f"job {job_id} has already {_past(status)}; it cannot be cancelled")
        if self._running(job_id):
            self._stop(job_id, "cancel")
        else:
            self._finish(record, "cancelled")
        return record.job

    def pause(self, job_id: str) -> FineTuningJob:
        """Stop a running job after its current step, keeping a checkpoint to resume from."""
        record = self.get(job_id)
        if record.job.status == "queued":
            self._set(record, "paused", "Job paused before it started")
        elif self._running(job_id):
            self._stop(job_id, "pause")
        else:
            raise JobStateError(
                f"job {job_id} is {record.job.status}; only a job that is queued "
                "or running can be paused"
            )
        return record.job

    def resume(self, job_id: str) -> FineTuningJob:
        """Queue a paused job, or a failed one with a checkpoint, to continue where it stopped."""
        record = self.get(job_id)
        job = record.job
        resumable = job.status == "failed" and job.run is not None
        if job.status != "paused" and not resumable:
            raise JobStateError(
                f"job {job_id} is {job.status}; only a paused job, or a failed one that has "
                "started training, can be resumed"
            )
        record.resume = job.run is not None
        job.error = None
        job.finished_at = None
        self.log(job_id).reopen()
        self._set(record, "queued", "Job resumed: queued to continue from its newest checkpoint")
        self._wake.set()
        return job

    # ----------------------------------------------------------------- internals

    def _running(self, job_id: str) -> bool:
        return self._trainer is not None and self._trainer[0] == job_id

    def _stop(self, job_id: str, intent: str) -> None:
        assert self._trainer is not None
        self._intent[job_id] = intent
        self._trainer[1].stop()
        self.log(job_id).add(f"Stopping after the current step ({intent} requested)")

    def _save(self, record: JobRecord, *, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._saved < SAVE_EVERY:
            return
        self._saved = now
        self.store.save(record.job.id, record)

    def _set(self, record: JobRecord, status: str, message: str, level: str = "info") -> None:
        record.job.status = status  # type: ignore[assignment]
        self._save(record)
        self.log(record.job.id).add(message, level=level, data={"status": status})  # type: ignore[arg-type]

    def _finish(self, record: JobRecord, status: str, error: JobError | None = None) -> None:
        job = record.job
        job.error = error
        job.finished_at = int(time.time())
        job.estimated_finish = None
        messages = {
            "succeeded": "The job has successfully completed",
            "cancelled": "The job was cancelled",
            "failed": f"The job failed: {error.message if error else 'unknown error'}",
        }
        self._set(record, status, messages[status], "error" if status == "failed" else "info")
        if status != "failed" or job.run is None:
            self.log(job.id).close()

    def _validate_later(self, record: JobRecord) -> None:
        task = asyncio.create_task(self._validate(record), name=f"validate-{record.job.id}")
        self._validators.add(task)
        task.add_done_callback(self._validators.discard)

    async def _validate(self, record: JobRecord) -> None:
        """`validating_files`: the same data checks as `persona data check`, with the card."""
        spec = record.spec

        def check() -> list[str]:
            card = load_card(Path(spec.folder))
            if spec.training is not None:
                card = msgspec.structs.replace(card, training=spec.training)
            report = check_dataset([Path(f) for f in spec.data_files], card, self.tokenizer())
            return [f"line {p.line}: {p.message}" for p in report.errors]

        try:
            problems = await asyncio.to_thread(check)
        except Exception as exc:
            problems = [str(exc)]
        if record.job.status != "validating_files":
            return  # cancelled meanwhile
        if problems:
            detail = "\n".join(listed(problems))
            message = f"the training data has {len(problems)} error(s):\n{detail}"
            self._finish(
                record, "failed", JobError("invalid_training_file", message, "training_file")
            )
            return
        self._set(record, "queued", "Files validated; job queued")
        self._wake.set()

    async def _work(self) -> None:
        while not self._closing:
            queued = [r for r in self.records.values() if r.job.status == "queued"]
            if not queued:
                self._wake.clear()
                await self._wake.wait()
                continue
            record = min(queued, key=lambda r: r.created)
            try:
                await self._run(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("fine-tuning job %s failed", record.job.id)
                self._finish(record, "failed", JobError("server_error", str(exc)))

    async def _run(self, record: JobRecord) -> None:
        job, spec = record.job, record.spec
        resume = job.run if record.resume else None
        if resume is not None:
            run: NewRun | ResumeRun | GuardRun = ResumeRun(persona=job.persona, run=resume)
        elif spec.run is not None:
            run = spec.run
        else:
            self._finish(record, "failed", JobError("server_error", NO_RUN))
            return
        order = TrainOrder(job=run, adapters=self.setup.adapters)
        argv = train_command(write_order(self.store.root / job.id, order))
        trainer = TrainerProcess(argv)
        self._trainer = (job.id, trainer)
        self._set(record, "running", "Fine-tuning job started" + (f" ({resume})" if resume else ""))
        last: Event | None = None
        train_tokens = 0
        try:
            async for event in trainer.events():
                last = event
                if isinstance(event, Start):
                    train_tokens = event.dataset.train_tokens
                if isinstance(event, Error):
                    # Name data files as the client knows them, not where the server keeps them.
                    event = Error(message=event.message.replace(spec.folder + "/", ""))
                    last = event
                await self._on_event(record, event, train_tokens)
        finally:
            self._trainer = None
        intent = self._intent.pop(job.id, None)
        await self._ended(record, last, intent)

    async def _on_event(self, record: JobRecord, event: Event, train_tokens: int) -> None:
        job = record.job
        note = apply_event(job, event, train_tokens)
        if isinstance(event, Start):
            record.resume = False
        self._save(record, throttle=isinstance(event, Step))
        self.log(job.id).add(note.message, level=note.level, kind=note.kind, data=note.data)
        if isinstance(event, Checkpoint) and record.spec.eval_checkpoints and self.on_checkpoint:
            # The trainer prints the event once the manifest is published; index it now, so the
            # evaluation never asks for a checkpoint the watcher has not seen yet.
            if self.refresh is not None:
                await self.refresh(job.persona)
            await self.on_checkpoint(job, checkpoint_model(job, event))

    async def _ended(self, record: JobRecord, last: Event | None, intent: str | None) -> None:
        job = record.job
        if job.run is not None:
            job.result_files = self._result_files(record)
        if isinstance(last, Done) and last.reason != "stopped":
            if self.refresh is not None:
                await self.refresh(job.persona)
            # A guard is served with its persona (and by `/v1/moderations` under its name).
            guarded = job.method.type == "guard"
            job.fine_tuned_model = job.persona if guarded else f"{job.persona}@{job.run}"
            self._finish(record, "succeeded")
        elif intent == "cancel":
            self._finish(record, "cancelled")
        elif intent == "pause" and isinstance(last, Done):
            record.resume = True
            self._set(record, "paused", f"Job paused at step {last.step}; resume continues it")
        elif intent == "shutdown":
            self._finish(record, "failed", server_stopped(job))
        else:
            message = last.message if isinstance(last, Error) else "the trainer stopped"
            self._finish(record, "failed", JobError("training_failed", message))

    def _result_files(self, record: JobRecord) -> list[str]:
        job = record.job
        assert job.run is not None
        registry = Registry(Path(self.setup.adapters))
        try:
            content = metrics_csv(registry.run_dir(job.persona, job.run))
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return job.result_files
        for old in job.result_files:
            with contextlib.suppress(LookupError):
                self.files.delete(old)
        name = f"{job.id}-{job.run}-metrics.csv"
        return [self.files.create(name, "fine-tune-results", content).id]


def new_job_id() -> str:
    """A fresh `ftjob-...` id."""
    return new_id("ftjob-")


def _past(status: str) -> str:
    return {"succeeded": "succeeded", "failed": "failed", "cancelled": "been cancelled"}[status]


T = TypeVar("T")


def page(
    items: Sequence[T], ids: Sequence[str], after: str | None, limit: int
) -> tuple[list[T], bool]:
    """OpenAI's cursor paging over a newest-first list: items after the id `after`."""
    start = ids.index(after) + 1 if after in ids else (len(ids) if after else 0)
    chunk = list(items[start:])
    return chunk[:limit], len(chunk) > limit
