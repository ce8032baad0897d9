"""Run a `persona` subcommand as a child process; failures become ApiError like HTTP ones do."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .api import ApiError


@dataclass(frozen=True)
class CommandResult:
    """What a finished command printed."""

    returncode: int
    stdout: bytes
    stderr: str


def missing_subcommand(stderr: str, name: str) -> bool:
    """True when argparse refused the subcommand itself (an older installation)."""
    return f"invalid choice: '{name}'" in stderr


async def run_command(
    argv: Sequence[str],
    on_progress: Callable[[str], None] | None = None,
    title: str = "Command failed",
    ok_codes: tuple[int, ...] = (0,),
) -> CommandResult:
    """Run to completion; stderr pieces (split on newlines and carriage returns) go to
    `on_progress`. Any other exit code than `ok_codes` raises ApiError with stderr's tail."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ApiError(title, f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    assert process.stdout is not None
    assert process.stderr is not None
    tail: deque[str] = deque(maxlen=20)

    async def read_stderr(stream: asyncio.StreamReader) -> None:
        pending = ""
        while chunk := await stream.read(4096):
            pending += chunk.decode("utf-8", errors="replace").replace("\r", "\n")
            *lines, pending = pending.split("\n")
            for line in (s.strip() for s in lines):
                if line:
                    tail.append(line)
                    if on_progress is not None:
                        on_progress(line)
        if pending.strip():
            tail.append(pending.strip())
            if on_progress is not None:
                on_progress(pending.strip())

    try:
        stdout, _ = await asyncio.gather(process.stdout.read(), read_stderr(process.stderr))
        code = await process.wait()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    stderr = "\n".join(tail)
    if code not in ok_codes:
        lines = [line for line in tail if not line.startswith("usage:")]
        raise ApiError(title, "\n".join(lines[-6:]) or f"exited with code {code}")
    return CommandResult(code, stdout, stderr)
