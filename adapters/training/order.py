"""The trainer's whole input as one typed document: a new run, a run to resume, or a guard.

`persona train --config FILE` (or `-` for stdin) reads it as JSON; `persona train PERSONA --rank 8`
builds the same document from its flags. A fine-tuning job writes it into the job's folder and
starts `persona train --config` on it, so the server and the trainer share one type instead of a
command line that each side spells by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from .config import ConfigError, RunConfig, training_problems


class NewRun(msgspec.Struct, tag="train", tag_field="kind", frozen=True, kw_only=True,
             forbid_unknown_fields=True):  # fmt: skip
    """A fresh run with fully resolved settings (card, overrides and starting checkpoint)."""

    config: RunConfig
    label: str | None = None
    """Names the run `run-N-LABEL`."""


class ResumeRun(msgspec.Struct, tag="resume", tag_field="kind", frozen=True, kw_only=True,
                forbid_unknown_fields=True):  # fmt: skip
    """Continue a stopped or killed run from its newest checkpoint, with its own `run.json`."""

    persona: str
    """The persona's name (or folder) whose run this is."""
    run: str
    """The run id, such as `run-3`."""


class GuardRun(msgspec.Struct, tag="guard", tag_field="kind", frozen=True, kw_only=True,
               forbid_unknown_fields=True):  # fmt: skip
    """Train a persona's guard: a probe on the base model, no adapter."""

    persona: str
    """A persona name, a persona folder, or the general guard's id."""
    base_model: str | None = None
    """None: the card's base model."""
    seed: int = 0


class TrainOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one trainer process does, and where it publishes."""

    job: NewRun | ResumeRun | GuardRun
    adapters: str | None = None
    """The adapter registry folder; None: the user's own."""


def order_problems(order: TrainOrder) -> list[str]:
    """Every value the trainer cannot run with, each naming its field."""
    job = order.job
    if isinstance(job, NewRun):
        problems = [f"training.{p}" for p in training_problems(job.config.training)]
        if job.config.iters is not None and job.config.iters < 1:
            problems.append("iters must be >= 1")
        if job.config.training.method == "dpo" and job.config.init_from is None:
            problems.append(
                "init_from must name a checkpoint for DPO (its frozen weights are the "
                "reference model)"
            )
        return problems
    if isinstance(job, GuardRun) and not 0 <= job.seed < 2**64:
        return ["seed must be between 0 and 2**64 - 1"]
    return []


def encode_order(order: TrainOrder) -> bytes:
    """The order as the JSON document `persona train --config` reads."""
    return msgspec.json.encode(order)


def decode_order(data: bytes, source: str = "the trainer config") -> TrainOrder:
    """Decode and check a document; ConfigError naming `source` and the bad field."""
    try:
        order = msgspec.json.decode(data, type=TrainOrder)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    problems = order_problems(order)
    if problems:
        raise ConfigError(f"{source}: {'; '.join(problems)}")
    return order


def read_order(source: str) -> TrainOrder:
    """The order in a file, or on stdin for `-`; ConfigError when unreadable or invalid."""
    if source == "-":
        return decode_order(sys.stdin.buffer.read(), "the trainer config on stdin")
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the trainer config {source}: {exc.strerror}") from None
    return decode_order(data, f"the trainer config {source}")
