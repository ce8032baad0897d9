"""A `persona serve` child process: started when nothing answers, watched, stopped on exit."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from .api import ApiClient, ApiError, ServerHealth
from .settings import TuiSettings

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def is_local(url: str) -> bool:
    """Whether the URL points at this machine (only then may the TUI start a server)."""
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


def serve_argv(settings: TuiSettings) -> list[str]:
    """`persona serve` with the host, port and model the settings name."""
    parts = urlsplit(settings.url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return settings.command("serve", "--host", host, "--port", str(port), "--model", settings.model)


class ServerProcess:
    """One server child process and its log file."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv = argv
        """The command line it runs."""
        self.log_path = log_path
        """Where its stdout and stderr go."""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the server; it keeps its own session so a terminal Ctrl+C reaches only us."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        """The child's process id once started."""
        return self._process.pid if self._process else None

    @property
    def exited(self) -> bool:
        """True once the child has ended."""
        return self._process is not None and self._process.poll() is not None

    def tail(self, lines: int = 12) -> str:
        """The last lines of the server's log, to explain a failed start."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down, and kill it if it will not."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


async def wait_until_ready(
    client: ApiClient,
    process: ServerProcess | None,
    on_health: Callable[[ServerHealth], None],
    poll: float = 0.5,
) -> ServerHealth:
    """Poll `/health` until it says ready; raise ApiError if the child process dies first."""
    while True:
        health = await client.health()
        on_health(health)
        if health.state == "ready":
            return health
        if process is not None and process.exited:
            raise ApiError("The server did not start", process.tail() or "it exited at once")
        await asyncio.sleep(poll)
