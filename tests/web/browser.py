"""Test helper: where Debian's chromium is, and servers run as subprocesses for it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from data.home import studio_command

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file():
        return "chromium is not installed: run sh scripts/install-chromium.sh as root"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make .venv/.installed-test)"
    return None


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A running server subprocess and where it listens."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Stop it and wait."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(command: list[str], log: Path, env: dict[str, str], ready: str) -> Process:
    """Start `command` on a free port (`{port}` in it) and wait until GET `ready` answers 200."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            if httpx.get(url + ready, timeout=5).status_code == 200:
                return Process(url, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"not ready in time: {log.read_text()}")


def serve(home: Path, model: Path, adapters: Path, *flags: str) -> Process:
    """`persona serve` on `model` with its own home folder."""
    env = {**os.environ, "PERSONA_HOME": str(home)}
    env.pop("PERSONA_API_KEY", None)
    # Juni's card has a guard trained for the embedded model only: off on the tiny model.
    command = studio_command("serve", "--port", "{port}", "--model", str(model), "--no-guard")
    command += ["--adapters", str(adapters), *flags]
    return start(command, home / "serve.log", env, "/health")


def static_server(folder: Path, log: Path) -> Process:
    """`python -m http.server` in `folder`, as the export's README says."""
    env = {**os.environ}
    command = [sys.executable, "-P", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    process = start([*command, "--directory", str(folder)], log, env, "/index.html")
    return process


def node_missing() -> str | None:
    """Why npm packages cannot be fetched here, or None."""
    return None if shutil.which("npm") else "npm is not installed (apt-get install nodejs npm)"
