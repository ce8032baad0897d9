"""Turn a persona's adapter state into table rows, and work out what "roll back" means."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .wire import PersonaAdapters

FIRST_METRICS = ("val_loss", "train_loss")
"""Shown first; any other metric (eval scores) follows in name order."""


@dataclass(frozen=True)
class CheckpointLine:
    """One row of the adapters table."""

    run: str
    step: int
    version: str
    cells: tuple[str, ...]


def metric_names(entry: PersonaAdapters) -> list[str]:
    """Every metric any checkpoint of the persona carries, losses first."""
    names = {k for run in entry.runs for c in run.checkpoints for k in c.metrics}
    first = [n for n in FIRST_METRICS if n in names]
    return first + sorted(names - set(first))


def checkpoint_lines(entry: PersonaAdapters) -> tuple[list[str], list[CheckpointLine]]:
    """Column titles and one line per checkpoint, oldest run first."""
    metrics = metric_names(entry)
    columns = ["run", "step", "created", *metrics, "state"]
    lines = []
    for run in entry.runs:
        for ckpt in run.checkpoints:
            marks = []
            if ckpt.version == entry.active:
                marks.append("active" + (" (pinned)" if entry.mode == "pinned" else ""))
            if ckpt.version in entry.loaded:
                marks.append("loaded")
            if ckpt.step == run.best:
                marks.append("best")
            if ckpt.step == run.latest:
                marks.append("latest")
            created = time.strftime("%m-%d %H:%M", time.localtime(ckpt.created))
            values = [_metric(ckpt.metrics.get(m)) for m in metrics]
            cells = (run.run, str(ckpt.step), created, *values, ", ".join(marks))
            lines.append(CheckpointLine(run.run, ckpt.step, ckpt.version, cells))
    return columns, lines


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def rollback_target(entry: PersonaAdapters) -> tuple[str, int] | None:
    """The checkpoint just before the active one (across runs), or None if there is none."""
    order = [(run.run, c.step, c.version) for run in entry.runs for c in run.checkpoints]
    versions = [v for _, _, v in order]
    if entry.active not in versions:
        return None
    index = versions.index(entry.active)
    if index == 0:
        return None
    run, step, _ = order[index - 1]
    return run, step


def summary(entry: PersonaAdapters) -> str:
    """Mode, the active version and what the engine holds in memory."""
    mode = "follows the newest checkpoint" if entry.mode == "follow" else "pinned"
    active = entry.active or "none (base model)"
    loaded = ", ".join(entry.loaded) or "nothing"
    return f"Serving {active}; {mode}.\nIn memory: {loaded}."


def last_error(entry: PersonaAdapters) -> str:
    """The last load failure in plain words, or an empty string."""
    error = entry.last_error
    if error is None:
        return ""
    when = time.strftime("%H:%M:%S", time.localtime(error.time)) if error.time else ""
    version = error.version or "an adapter"
    return f"Could not load {version} ({when}): {error.message}\nThe previous version kept serving."
