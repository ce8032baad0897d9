"""One `persona train --json` child process: its order, its events, and how to stop it.

The child reads everything it does from one typed document (`TrainOrder`, written as JSON into
the job's folder), never from flags spelled out here.

The trainer stays the one place training happens; the server only reads its JSON events. On
Linux the child gets SIGTERM if the server dies, which makes it stop after its step with a
checkpoint, so a job cut short by a crash can be resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec

from adapters.training.events import Done, Error, Event, decode_event
from adapters.training.order import TrainOrder, encode_order
from data.atomic import write_bytes
from data.home import studio_command

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


CONFIG = "trainer.json"
"""The trainer's order, written into the job's folder before each start."""


def write_order(folder: Path, order: TrainOrder) -> Path:
    """Write the order atomically as `folder/trainer.json`; its path."""
    path = folder / CONFIG
    write_bytes(path, encode_order(order))
    return path


def train_command(config: Path) -> list[str]:
    """`python -P -m studio train --config FILE --json`: the trainer on a written order."""
    return studio_command("train", "--config", str(config), "--json")


class TrainerProcess:
    """A running trainer; `events()` yields what it prints until it exits."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        """The command line."""
        self.stderr_tail: deque[str] = deque(maxlen=12)
        """Its last lines on stderr, to explain an exit without an event."""
        self.process: asyncio.subprocess.Process | None = None

    async def events(self) -> AsyncIterator[Event]:
        """Start the trainer and yield its events; the last is always Done or Error."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                limit=1 << 22,  # the start event carries the whole config on one line
            )
        except OSError as exc:
            yield Error(message=f"cannot start the trainer: {exc.strerror or exc}")
            return
        self.process = process
        assert process.stdout is not None
        assert process.stderr is not None
        reader = asyncio.create_task(self._read_stderr(process.stderr))
        ended = False
        try:
            async for line in process.stdout:
                if not line.strip().startswith(b"{"):
                    continue
                try:
                    event = decode_event(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                ended = ended or isinstance(event, Done | Error)
                yield event
            code = await process.wait()
            await reader
            if not ended:
                detail = "\n".join(self.stderr_tail) or "no output"
                yield Error(message=f"the trainer exited with code {code}: {detail}")
        finally:
            if process.returncode is None:
                await self.terminate()
            reader.cancel()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            text = line.decode("utf-8", errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)

    def stop(self) -> None:
        """Ask it to stop after the current step; it publishes a checkpoint and says done."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    async def terminate(self, grace: float = 60.0) -> None:
        """Stop after the step (keeping a checkpoint); kill it if that takes over `grace` s."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.stop()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
