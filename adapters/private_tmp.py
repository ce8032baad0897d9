"""Give MLX a kernel cache only this user can write, before mlx is imported.

MLX's CPU backend compiles fused kernels with g++ into `<temp>/mlx/<version>/cpu/*.so` and
loads any library it finds there, where `<temp>` is C++'s `temp_directory_path()`: `$TMPDIR`,
else `/tmp`. On a shared `/tmp` another user can plant a `.so` under the name of a kernel, and it
runs inside our process. So every entry point sets `TMPDIR` to a folder under the persona
cache, mode 0700, owned by us. Python's `tempfile` and our subprocesses follow it too. This
module must not import mlx.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from data.home import cache_dir

FOLDER = "tmp"
"""The private temporary folder's name inside the persona cache."""


class PrivateTmpError(RuntimeError):
    """The private temporary folder exists but is not ours alone."""


def private_tmp() -> Path:
    """Create (mode 0700) or check the private temporary folder; PrivateTmpError if another
    user owns it or it is a symlink."""
    folder = cache_dir() / FOLDER
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PrivateTmpError(f"{folder} is not a plain folder; remove it")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise PrivateTmpError(f"{folder} belongs to another user; remove it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)
    return folder


def use_private_tmp() -> Path:
    """Point `TMPDIR` (MLX's kernel cache, Python's tempfile) at `private_tmp()`; call before
    mlx is imported. Safe to call again."""
    folder = private_tmp()
    os.environ["TMPDIR"] = str(folder)
    import tempfile

    tempfile.tempdir = None  # recomputed from TMPDIR on next use
    return folder
