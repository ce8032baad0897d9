"""Atomic file writes: write a temporary sibling, fsync, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_bytes(path: Path, payload: bytes) -> None:
    """Replace `path` with `payload` so a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Atomically replace `path` with UTF-8 `text`."""
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Build a folder under a hidden sibling name; rename it to `target` only if the block ends
    without an exception, else remove it. FileExistsError if `target` exists at the rename.

    Discovery skips dot-folders, so nobody ever sees half a folder, and a failure leaves nothing.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # A plain mkdir (not mkdtemp's 0700), so the persona folder follows the user's umask.
    staging = target.parent / f".{target.name}-{secrets.token_hex(6)}.tmp"
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            raise FileExistsError(f"{target} exists already")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_bytes(path: Path, payload: bytes) -> Iterator[Path]:
    """Write `payload` to a temporary sibling of `path` and yield it (to check it, say); rename
    it over `path` only if the block ends without an exception, else remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    staged = Path(tmp)
    try:
        os.chmod(staged, _mode_of(path))  # mkstemp makes 0600; keep the file's own mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        yield staged
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def _mode_of(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
