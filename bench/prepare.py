"""Time `persona model prepare`: a cold conversion into a fresh cache, then a cached call.

Usage: python bench/prepare.py   (uses a temporary PERSONA_CACHE; the user's cache is untouched)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time


def timed(env: dict[str, str]) -> float:
    """Wall time of one `persona model prepare` subprocess."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-P", "-m", "studio", "model", "prepare"],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    """Print cold and cached preparation times."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PERSONA_CACHE=cache)
        cold = timed(env)
        warm = timed(env)
    print(
        f"persona model prepare: first run {cold:.1f} s, "
        f"cached {warm:.2f} s (process start included)"
    )


if __name__ == "__main__":
    main()
