"""Run `persona train PERSONA --json` as a child process and read its JSON-lines events."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import deque
from collections.abc import AsyncIterator, Sequence

import msgspec

# The trainer's own event Structs (pure msgspec): one definition for the writer and the reader.
from adapters.training.events import Best as BestEvent
from adapters.training.events import Checkpoint as CheckpointEvent
from adapters.training.events import Done as DoneEvent
from adapters.training.events import Error as ErrorEvent
from adapters.training.events import Event as TrainEvent
from adapters.training.events import Start as StartEvent
from adapters.training.events import Step as StepEvent
from adapters.training.events import Val as ValEvent

__all__ = [
    "BestEvent",
    "CheckpointEvent",
    "DoneEvent",
    "ErrorEvent",
    "StartEvent",
    "StepEvent",
    "TrainEvent",
    "TrainOverrides",
    "TrainingRun",
    "ValEvent",
    "parse_event",
    "train_argv",
]

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
    base: Sequence[str],
    persona: str,
    overrides: TrainOverrides,
    resume: str | None = None,
    model: str | None = None,
) -> list[str]:
    """`persona train PERSONA --json [--resume RUN] [--model M] [--field value ...]`."""
    argv = [*base, "train", persona, "--json"]
    if resume:
        argv += ["--resume", resume]
    if model:
        argv += ["--model", model]
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
                limit=1 << 22,  # the start event carries the whole config on one line
            )
        except OSError as exc:
            yield ErrorEvent(message=f"cannot start the trainer: {exc.strerror or exc}")
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
                yield ErrorEvent(
                    message=f"the trainer exited with code {self.returncode}: {detail}"
                )
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
