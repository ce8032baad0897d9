"""How long a training run is: its steps, the settings derived from them, and a time estimate.

Fixed defaults fit one dataset size only: with 31 rows, validating every 25 steps and warming up
for 10 means one validation at the very end and warmup for 40% of a 24-step run. So `warmup`,
`val_every` and `checkpoint_every` left unset in a card are derived from the planned run:
validation about four times per epoch, a checkpoint about twice per epoch, warmup at most 10%
of the steps (and never more than 10). The trainer and the TUI's Train screen share these rules.
"""

from __future__ import annotations

import math

import msgspec

from .card import Training

VALIDATIONS_PER_EPOCH = 4
CHECKPOINTS_PER_EPOCH = 2
WARMUP_SHARE = 0.1
MAX_WARMUP = 10
REFERENCE_TOKENS_PER_SEC = 40.0
"""Trained tokens per second of the embedded 270M on a 2-core x86 CPU with OpenBLAS (37-42
measured); the estimate before a run. The run's own ETA takes over after a few steps."""


def derived(training: Training, total_steps: int, batches_per_epoch: int) -> Training:
    """`training` with unset `warmup`, `val_every` and `checkpoint_every` filled from the run."""
    epoch = max(1, min(batches_per_epoch, total_steps))
    changes: dict[str, int] = {}
    if training.val_every is None:
        changes["val_every"] = max(1, math.ceil(epoch / VALIDATIONS_PER_EPOCH))
    if training.checkpoint_every is None:
        changes["checkpoint_every"] = max(1, math.ceil(epoch / CHECKPOINTS_PER_EPOCH))
    if training.warmup is None:
        changes["warmup"] = min(MAX_WARMUP, int(total_steps * WARMUP_SHARE))
    return msgspec.structs.replace(training, **changes) if changes else training


def planned_steps(
    train_rows: int, training: Training, iters: int | None = None, split: bool = True
) -> tuple[int, int]:
    """(total steps, batches per epoch) for `train_rows` rows; `split` takes `val_fraction` off
    first (a persona without `valid.jsonl`). Close to the trainer's own count, before tokenizing."""
    rows = train_rows
    if split and training.val_fraction > 0 and train_rows > 1:
        rows -= max(1, round(train_rows * training.val_fraction))
    batches = max(1, math.ceil(rows / training.batch_size))
    return (iters if iters is not None else training.epochs * batches), batches


def estimate_seconds(total_steps: int, tokens_per_epoch: int, batches_per_epoch: int) -> float:
    """Seconds a run of `total_steps` takes at the reference speed."""
    per_step = tokens_per_epoch / max(1, batches_per_epoch)
    return total_steps * per_step / REFERENCE_TOKENS_PER_SEC


def describe(total_steps: int, seconds: float | None) -> str:
    """`24 steps ≈ 6 minutes` (or only the steps when no estimate is known)."""
    steps = f"{total_steps} step{'s' if total_steps != 1 else ''}"
    if seconds is None:
        return steps
    minutes = seconds / 60
    if minutes < 1:
        return f"{steps} ≈ under a minute"
    if minutes < 90:
        return f"{steps} ≈ {round(minutes)} minute{'s' if round(minutes) != 1 else ''}"
    return f"{steps} ≈ {minutes / 60:.1f} hours"
