"""Start a run, fresh or resumed, from its `TrainOrder`: data, model, run folder and its lock.

A fresh run's folder is created only once its data has passed the checks, so bad data never
leaves an empty run behind. A resumed run takes its settings from `run.json` (not the card, which
may have changed) and refuses a dataset whose hash differs from the one it started with.
"""

from __future__ import annotations

import fcntl
import sys
import threading
from pathlib import Path
from typing import IO

import msgspec

from adapters.registry import SAFE_NAME, Registry, RegistryError
from data.home import adapters_dir

from .config import ConfigError
from .distributed import world
from .events import Emit
from .initial import check_start, init_checkpoint
from .loop import Trainer
from .order import NewRun, ResumeRun, TrainOrder
from .prepare import PrepareError, prepare, resolve_persona
from .record import read_record
from .state import ResumeError, has_state

EXPECTED = (PrepareError, ConfigError, ResumeError, RegistryError)
"""Errors whose message is the whole story (no traceback)."""


def start_session(order: TrainOrder, stop: threading.Event, emit: Emit) -> Trainer | None:
    """A Trainer ready to `train()` for a new or resumed run; None when a stop arrived while
    preparing."""
    registry = Registry(Path(order.adapters) if order.adapters else adapters_dir())
    job = order.job
    if isinstance(job, ResumeRun):
        return _resume(job, registry, stop, emit)
    if not isinstance(job, NewRun):
        raise ConfigError(f"the trainer config holds a {type(job).__name__}, not an adapter run")
    config = job.config
    if config.init_from is not None:
        check_start(config, registry)
    prepared = prepare(config, _stderr)
    init = init_checkpoint(config, registry, prepared.base.base_hash)
    if stop.is_set():
        return None
    ranks = world()
    if not ranks.writer:
        # Ranks other than 0 compute and write nothing; their run folder is never created.
        folder = registry.persona_dir(config.persona) / f".rank-{ranks.rank}"
        return Trainer(prepared, folder.name, folder, emit, stop, ranks, init=init)
    run, run_dir = registry.new_run(config.persona, job.label)
    lock = lock_run(run_dir)
    trainer = Trainer(prepared, run, run_dir, emit, stop, ranks, init=init)
    trainer.lock = lock
    return trainer


def _resume(
    job: ResumeRun, registry: Registry, stop: threading.Event, emit: Emit
) -> Trainer | None:
    # A name is the registry's folder as it stands; a path is a persona folder to read.
    persona = job.persona if SAFE_NAME.fullmatch(job.persona) else resolve_persona(job.persona).name
    run_dir = registry.run_dir(persona, job.run)
    try:
        record = read_record(run_dir)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ResumeError(f"cannot resume {persona}@{job.run}: {exc}") from None
    ranks = world()
    # Every rank reads the checkpoint (a shared or copied adapters folder); rank 0 writes.
    lock = lock_run(run_dir) if ranks.writer else None
    resumable = [c for c in registry.checkpoints(persona, job.run) if has_state(c.path)]
    if not resumable:
        raise ResumeError(f"{persona}@{job.run} has no checkpoint to resume from")
    prepared = prepare(record.config, _stderr)
    if prepared.dataset.train_sha256 != record.dataset.train_sha256 or (
        prepared.dataset.valid_sha256 != record.dataset.valid_sha256
    ):
        raise ResumeError(f"the dataset changed since {job.run} started; start a new run instead")
    init = init_checkpoint(record.config, registry, prepared.base.base_hash)
    if stop.is_set():
        return None
    trainer = Trainer(prepared, job.run, run_dir, emit, stop, ranks, init=init)
    trainer.resume_from(resumable[-1].path, record)
    trainer.lock = lock
    return trainer


def lock_run(run_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock on a run folder for this process's lifetime."""
    handle = (run_dir / ".lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ResumeError(f"{run_dir.name} is being trained by another process") from None
    return handle


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
