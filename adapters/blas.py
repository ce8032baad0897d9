"""Bind MLX's CPU matmuls to OpenBLAS before mlx is imported.

The mlx-cpu wheel links the reference BLAS, which makes every matmul 10-30x slower than OpenBLAS.
Loading Debian's OpenBLAS with RTLD_GLOBAL before libmlx is loaded makes libmlx's `cblas_*`
symbols resolve to it. This module must not import mlx.

`PERSONA_BLAS=/path/to/libblas.so.3` picks another library; `PERSONA_BLAS=off` keeps the
reference BLAS (for benchmarks).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib64/libopenblasp.so.0",
    "/usr/lib64/libopenblas.so.0",
)
INSTALL_HINT = "sudo apt-get install libopenblas0-pthread"


@dataclass(frozen=True)
class BlasStatus:
    """Which BLAS MLX's CPU backend will use."""

    name: str
    """`openblas`, `reference` or `accelerate`."""
    path: str | None
    """The shared library that was loaded, if any."""
    note: str
    """A one-line human summary, with the fix when it is slow."""


_status: BlasStatus | None = None


def ensure_fast_blas() -> BlasStatus:
    """Load OpenBLAS globally (once) if this is Linux; safe to call from every entry point."""
    global _status
    if _status is not None:
        return _status
    if platform.system() == "Darwin":
        _status = BlasStatus("accelerate", None, "BLAS: Apple Accelerate / Metal")
        return _status
    if "mlx.core" in sys.modules:
        # Too late to rebind; report what we can.
        _status = BlasStatus("unknown", None, "BLAS: mlx was imported before OpenBLAS could load")
        return _status
    override = os.environ.get("PERSONA_BLAS")
    candidates = (override,) if override else CANDIDATES
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            try:
                ctypes.CDLL(candidate, mode=os.RTLD_GLOBAL)
            except OSError:
                continue
            _status = BlasStatus("openblas", candidate, f"BLAS: OpenBLAS ({candidate})")
            return _status
    _status = BlasStatus(
        "reference",
        None,
        "BLAS: reference (slow, ~10x slower training). Install OpenBLAS: " + INSTALL_HINT,
    )
    return _status


def warn_if_slow(status: BlasStatus) -> None:
    """Print a one-line warning on stderr when MLX will run on the reference BLAS."""
    if status.name == "reference":
        print("warning: " + status.note, file=sys.stderr)
