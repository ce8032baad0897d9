"""Start a run, fresh or resumed: settings, data, model, run folder and its lock.

A fresh run's folder is created only once its data has passed the checks, so bad data never
leaves an empty run behind. A resumed run takes its settings from `run.json` (not the card, which
may have changed) and refuses a dataset whose hash differs from the one it started with.
"""

from __future__ import annotations

import argparse
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
from .initial import init_checkpoint, with_init
from .loop import Trainer
from .prepare import PrepareError, TrainRequest, new_config, prepare, resolve_persona
from .record import read_record
from .state import ResumeError, has_state

EXPECTED = (PrepareError, ConfigError, ResumeError, RegistryError)
"""Errors whose message is the whole story (no traceback)."""


def start_session(
    args: argparse.Namespace, overrides: dict[str, object], stop: threading.Event, emit: Emit
) -> Trainer | None:
    """A Trainer ready to `train()`, or None when a stop arrived while preparing."""
    registry = Registry(args.adapters or adapters_dir())
    log = _stderr
    if args.resume:
        return _resume(args, overrides, registry, stop, emit)
    if args.epochs is not None:
        overrides = overrides | {"epochs": args.epochs}
    request = TrainRequest(
        persona=args.persona,
        overrides=overrides,
        iters=args.iters,
        model=args.model,
        persona_dirs=tuple(args.personas),
        init_from=args.init_from,
    )
    config = with_init(new_config(request), registry, request.init_from, overrides)
    prepared = prepare(config, log)
    init = init_checkpoint(config, registry, prepared.base.base_hash)
    if stop.is_set():
        return None
    ranks = world()
    if not ranks.writer:
        # Ranks other than 0 compute and write nothing; their run folder is never created.
        folder = registry.persona_dir(config.persona) / f".rank-{ranks.rank}"
        return Trainer(prepared, folder.name, folder, emit, stop, ranks, init=init)
    run, run_dir = registry.new_run(config.persona, getattr(args, "label", None))
    lock = lock_run(run_dir)
    trainer = Trainer(prepared, run, run_dir, emit, stop, ranks, init=init)
    trainer.lock = lock
    return trainer


def _resume(
    args: argparse.Namespace,
    overrides: dict[str, object],
    registry: Registry,
    stop: threading.Event,
    emit: Emit,
) -> Trainer | None:
    given = sorted(overrides) + [
        n for n in ("epochs", "iters", "model", "init_from") if getattr(args, n) is not None
    ]
    if given:
        raise ConfigError(
            f"--resume continues {args.resume} with its own settings; drop "
            + ", ".join("--from" if n == "init_from" else f"--{n.replace('_', '-')}" for n in given)
        )
    persona = args.persona
    if not (SAFE_NAME.fullmatch(persona) and registry.run_dir(persona, args.resume).is_dir()):
        persona = resolve_persona(args.persona, tuple(args.personas)).name
    run_dir = registry.run_dir(persona, args.resume)
    try:
        record = read_record(run_dir)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ResumeError(f"cannot resume {persona}@{args.resume}: {exc}") from None
    ranks = world()
    # Every rank reads the checkpoint (a shared or copied adapters folder); rank 0 writes.
    lock = lock_run(run_dir) if ranks.writer else None
    resumable = [c for c in registry.checkpoints(persona, args.resume) if has_state(c.path)]
    if not resumable:
        raise ResumeError(f"{persona}@{args.resume} has no checkpoint to resume from")
    prepared = prepare(record.config, _stderr)
    if prepared.dataset.train_sha256 != record.dataset.train_sha256 or (
        prepared.dataset.valid_sha256 != record.dataset.valid_sha256
    ):
        raise ResumeError(
            f"the dataset changed since {args.resume} started; start a new run instead"
        )
    init = init_checkpoint(record.config, registry, prepared.base.base_hash)
    if stop.is_set():
        return None
    trainer = Trainer(prepared, args.resume, run_dir, emit, stop, ranks, init=init)
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
