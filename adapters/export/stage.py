"""Write an export into a staging folder beside its target, then rename it into place.

A reader of the target folder sees nothing or the whole export, never half of it; a failed
export leaves the target as it was. An existing non-empty target is replaced only when asked, and
only if it is itself an earlier export (its README.md says so): `--force` never deletes a folder
of anything else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .source import ExportError

MARK = "Exported by persona studio"
"""The model card's line that tells an earlier export from any other folder."""


def is_export(folder: Path) -> bool:
    """Whether a folder holds an earlier persona studio export."""
    try:
        return MARK in (folder / "README.md").read_text(errors="replace")
    except OSError:
        return False


@contextmanager
def staged(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes `target`, on error it is removed."""
    target = target.expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        if not is_export(target):
            raise ExportError(f"{target} is not empty and not an earlier export; choose another")
        if not replace:
            raise ExportError(f"{target} holds an earlier export; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}."
    staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=".staging", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _follow_umask(staging)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=target.parent))
        os.replace(target, old / "export")
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (a brief window, single-threaded CLI)
    os.umask(mask)
    return mask


def _follow_umask(folder: Path) -> None:
    """Give the export the modes a plain mkdir and open would have: mkdtemp and mkstemp make
    0700 folders and 0600 files, which would keep other users (or a server) from reading it."""
    mask = current_umask()
    folder.chmod(0o777 & ~mask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
