"""Training events: one JSON object per line on stdout with `--json`, else a progress line.

Pure msgspec types (no mlx), tagged by the `event` field, so a reader decodes a line straight into
the right Struct.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

import msgspec


class DatasetInfo(msgspec.Struct, frozen=True):
    """What the run trains on."""

    train_rows: int
    valid_rows: int
    train_tokens: int
    """Tokens of all training rows (one epoch), prompts included."""
    learned_tokens: int
    """Of those, the assistant tokens that carry loss."""
    valid_tokens: int
    batches_per_epoch: int
    train_sha256: str
    valid_sha256: str | None = None
    """Hash of `valid.jsonl` when the persona ships one; else the split is seeded from train."""
    warnings: int = 0


class Start(msgspec.Struct, frozen=True, tag="start", tag_field="event"):
    """The run exists and knows its size."""

    run: str
    persona: str
    config: dict[str, Any]
    dataset: DatasetInfo
    total_steps: int
    resumed_from: int | None = None


class Step(msgspec.Struct, frozen=True, tag="step", tag_field="event"):
    """One optimizer step."""

    step: int
    epoch: float
    train_loss: float
    lr: float
    tokens_per_sec: float
    """Input tokens (prompt and reply, no padding) per second of training."""
    it_per_sec: float
    eta_sec: float
    peak_memory_gb: float
    """High-water mark of the process's resident memory."""


class Val(msgspec.Struct, frozen=True, tag="val", tag_field="event"):
    """Validation loss (mean over every learned token of the validation rows; for DPO and ORPO,
    the mean preference loss over the validation pairs)."""

    step: int
    val_loss: float


class Checkpoint(msgspec.Struct, frozen=True, tag="checkpoint", tag_field="event"):
    """A checkpoint was published: its manifest is on disk."""

    step: int
    path: str
    version: str


class Best(msgspec.Struct, frozen=True, tag="best", tag_field="event"):
    """A new best validation loss; the `best` marker points at this step's checkpoint."""

    step: int
    val_loss: float


class Done(msgspec.Struct, frozen=True, tag="done", tag_field="event"):
    """Training ended: `finished`, `early_stop` or `stopped` (by a signal)."""

    step: int
    reason: str


class Error(msgspec.Struct, frozen=True, tag="error", tag_field="event"):
    """Training could not start or failed; the message says why (dataset problems as file:line)."""

    message: str


Event = Start | Step | Val | Checkpoint | Best | Done | Error
Emit = Callable[[Event], None]

_encoder = msgspec.json.Encoder()


def decode_event(line: str | bytes) -> Event:
    """Decode one JSON line into its event Struct."""
    return msgspec.json.decode(line, type=Event)


def json_lines(stream: IO[str] | None = None) -> Emit:
    """Emit each event as one JSON line, flushed at once."""
    out = stream or sys.stdout

    def emit(event: Event) -> None:
        out.write(_encoder.encode(event).decode() + "\n")
        out.flush()

    return emit


def progress_lines(stream: IO[str] | None = None) -> Emit:
    """Emit events as readable lines: a rewritten progress line on a terminal, else one per step."""
    out = stream or sys.stdout
    state = {"total": 0, "tty": out.isatty()}

    def emit(event: Event) -> None:
        if isinstance(event, Start):
            state["total"] = event.total_steps
            d = event.dataset
            resumed = f", resuming at step {event.resumed_from}" if event.resumed_from else ""
            _line(
                f"{event.persona} {event.run}: {d.train_rows} train / {d.valid_rows} valid rows, "
                f"{d.batches_per_epoch} batches per epoch, {event.total_steps} steps{resumed}"
            )
        elif isinstance(event, Step):
            text = (
                f"step {event.step}/{state['total']}  epoch {event.epoch:.2f}  "
                f"loss {event.train_loss:.3f}  lr {event.lr:.2e}  "
                f"{event.tokens_per_sec:.0f} tok/s  ETA {format_duration(event.eta_sec)}"
            )
            _line(text, transient=bool(state["tty"]))
        elif isinstance(event, Val):
            _line(f"step {event.step}: val loss {event.val_loss:.3f}")
        elif isinstance(event, Best):
            _line(f"step {event.step}: new best val loss {event.val_loss:.3f}")
        elif isinstance(event, Checkpoint):
            _line(f"step {event.step}: checkpoint {event.version} -> {event.path}")
        elif isinstance(event, Done):
            _line(f"done at step {event.step} ({event.reason})")
        else:
            _line(f"error: {event.message}")

    def _line(text: str, transient: bool = False) -> None:
        if state["tty"]:
            out.write("\r\x1b[2K" + text + ("" if transient else "\n"))
        else:
            out.write(text + "\n")
        out.flush()

    return emit


def format_duration(seconds: float | None) -> str:
    """`1h 02m`, `3m 20s` or `45s`; `-` when unknown (the CLI's progress line and the TUI)."""
    if seconds is None or seconds < 0:
        return "-"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
