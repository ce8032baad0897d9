"""Run `persona train PERSONA --json` as a child process and read its JSON-lines events."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import deque
from collections.abc import AsyncIterator, Sequence

import msgspec


class StartEvent(msgspec.Struct, frozen=True, tag="start", tag_field="event"):
    """The run has a name and knows how many steps it will take."""

    run: str
    persona: str = ""
    total_steps: int = 0
    config: dict[str, object] = {}
    dataset: dict[str, object] = {}


class StepEvent(msgspec.Struct, frozen=True, tag="step", tag_field="event"):
    """A training loss report."""

    step: int
    train_loss: float
    epoch: float = 0.0
    lr: float = 0.0
    tokens_per_sec: float = 0.0
    it_per_sec: float = 0.0
    eta_sec: float | None = None
    peak_memory_gb: float = 0.0


class ValEvent(msgspec.Struct, frozen=True, tag="val", tag_field="event"):
    """A validation loss report."""

    step: int
    val_loss: float


class CheckpointEvent(msgspec.Struct, frozen=True, tag="checkpoint", tag_field="event"):
    """A checkpoint was published (its manifest is on disk)."""

    step: int
    path: str = ""
    version: str = ""


class BestEvent(msgspec.Struct, frozen=True, tag="best", tag_field="event"):
    """A new best validation loss."""

    step: int
    val_loss: float


class DoneEvent(msgspec.Struct, frozen=True, tag="done", tag_field="event"):
    """Training ended normally (finished, stopped or early-stopped)."""

    step: int = 0
    reason: str = ""


class ErrorEvent(msgspec.Struct, frozen=True, tag="error", tag_field="event"):
    """Training failed."""

    message: str


TrainEvent = (
    StartEvent | StepEvent | ValEvent | CheckpointEvent | BestEvent | DoneEvent | ErrorEvent
)
_DECODER = msgspec.json.Decoder(TrainEvent)


def parse_event(line: bytes | str) -> TrainEvent | None:
    """Decode one stdout line; None for anything that is not a known event."""
    line = line.strip()
    if not line or line[:1] not in ("{", b"{"):
        return None
    try:
        return _DECODER.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class TrainOverrides(msgspec.Struct, frozen=True, omit_defaults=True):
    """Hyperparameters changed from the card for one run; `None` keeps the card's value."""

    epochs: int | None = None
    learning_rate: float | None = None
    rank: int | None = None
    scale: float | None = None
    layers: int | None = None
    batch_size: int | None = None
    max_seq_length: int | None = None
    val_every: int | None = None
    checkpoint_every: int | None = None


def train_argv(
    base: Sequence[str], persona: str, overrides: TrainOverrides, resume: str | None = None
) -> list[str]:
    """The command line: `persona train PERSONA --json [--resume RUN] [--field value ...]`."""
    argv = [*base, "train", persona, "--json"]
    if resume:
        argv += ["--resume", resume]
    for name, value in msgspec.structs.asdict(overrides).items():
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


class TrainingRun:
    """One `persona train` child process."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        """The command line it runs."""
        self.stderr_tail: deque[str] = deque(maxlen=15)
        """The last lines the trainer wrote to stderr, to explain a failure."""
        self._process: asyncio.subprocess.Process | None = None
        self.returncode: int | None = None
        """The exit status once it has ended."""

    async def events(self) -> AsyncIterator[TrainEvent]:
        """Start the trainer and yield its events; ends with a Done or Error event."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            yield ErrorEvent(f"cannot start the trainer: {exc.strerror or exc}")
            return
        self._process = process
        assert process.stdout is not None
        assert process.stderr is not None
        reader = asyncio.create_task(self._read_stderr(process.stderr))
        finished = False
        try:
            async for line in process.stdout:
                event = parse_event(line)
                if event is None:
                    continue
                finished = finished or isinstance(event, DoneEvent | ErrorEvent)
                yield event
            self.returncode = await process.wait()
            await reader
            if not finished:
                detail = "\n".join(self.stderr_tail) or "no output"
                yield ErrorEvent(f"the trainer exited with code {self.returncode}: {detail}")
        finally:
            if process.returncode is None:
                await self._terminate(process)
            reader.cancel()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            text = line.decode("utf-8", errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)

    @property
    def running(self) -> bool:
        """True while the child process lives."""
        return self._process is not None and self._process.returncode is None

    def stop(self) -> None:
        """Ask the trainer to stop after the current step (it saves a checkpoint and says done)."""
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGINT)

    @staticmethod
    async def _terminate(process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
