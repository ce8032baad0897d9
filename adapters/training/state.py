"""True resume: everything a run needs to continue as if it had never stopped.

Saved into each checkpoint folder before its manifest (so a published checkpoint always has it):
the optimizer state (moments, step count and so the LR schedule position) as safetensors, and a
small JSON with the step, the position in the epoch and its batch order, early-stopping counters
and the dataset hash. Randomness (LoRA dropout) is reseeded from `(seed, step)` before every
step, so the RNG state is a function of the step and needs no saving.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import msgspec
import numpy as np
from mlx.utils import tree_flatten, tree_map_with_path

from data.atomic import write_bytes

STATE_FILE = "resume.json"
OPTIMIZER_FILE = "optimizer.safetensors"


class TrainerState(msgspec.Struct, kw_only=True):
    """Where a run is; mutated by the loop, saved with every checkpoint."""

    step: int = 0
    """Optimizer steps completed."""
    epoch: int = 0
    """The epoch the next batch belongs to."""
    batch: int = 0
    """Index of the next batch within the epoch's order."""
    order: list[list[int]] = []
    """Row indices of each batch of the current epoch, in training order."""
    best_val_loss: float | None = None
    best_step: int | None = None
    stale_vals: int = 0
    """Validations since the best one (early stopping compares it with `patience`)."""
    tokens: int = 0
    """Input tokens trained on so far."""
    dataset_sha256: str = ""


class ResumeError(Exception):
    """A run cannot be resumed from its files."""


def step_seed(seed: int, step: int) -> int:
    """The RNG seed used for one step: the same step always draws the same dropout masks."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def save_state(folder: Path, state: TrainerState, optimizer: optim.Optimizer) -> None:
    """Write the resume state into a checkpoint folder (each file atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    flat = dict(tree_flatten(optimizer.state))
    tmp = folder / f".{OPTIMIZER_FILE}.tmp.safetensors"
    mx.save_safetensors(str(tmp), flat)
    os.replace(tmp, folder / OPTIMIZER_FILE)
    write_bytes(folder / STATE_FILE, msgspec.json.encode(state))


def has_state(folder: Path) -> bool:
    """True if a checkpoint folder holds resume state."""
    return (folder / STATE_FILE).is_file() and (folder / OPTIMIZER_FILE).is_file()


def load_state(folder: Path, optimizer: optim.Optimizer, model: nn.Module) -> TrainerState:
    """Read the resume state and put the optimizer exactly where it was."""
    try:
        state = msgspec.json.decode((folder / STATE_FILE).read_bytes(), type=TrainerState)
        saved = mx.load(str(folder / OPTIMIZER_FILE))
    except (OSError, ValueError, RuntimeError, msgspec.DecodeError) as exc:
        raise ResumeError(f"cannot read the resume state in {folder}: {exc}") from None
    assert isinstance(saved, dict)
    optimizer.init(model.trainable_parameters())
    expected = {name for name, _ in tree_flatten(optimizer.state)}
    if expected != set(saved):
        missing = sorted(expected - set(saved))[:3]
        extra = sorted(set(saved) - expected)[:3]
        raise ResumeError(
            f"the optimizer state in {folder} does not match this model "
            f"(missing {missing}, unexpected {extra})"
        )
    optimizer.state = tree_map_with_path(lambda path, _: saved[path], optimizer.state)
    return state
