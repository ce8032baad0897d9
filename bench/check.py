"""`make bench-check`: the short benchmarks, each ratio held to its goal in docs/benchmarks.md.

Runs `bench/serve.py --quick` (the API against raw mlx-lm) and `bench/hotswap.py --quick`, each
in its own process on the embedded 270M, reads the ratios they write, prints one table and exits
1 when any goal is missed. Absolute times follow machine load, so every goal is a ratio or a
difference taken within one run; on a busy machine a miss is worth one re-run before it is
believed. A command to run before a release, not a test in the suite (it takes minutes).
Usage: python bench/check.py [--only serve,hotswap]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Goal:
    """One figure a bench writes and the bound docs/benchmarks.md promises for it."""

    bench: str
    key: str
    what: str
    bound: float
    at_least: bool
    """True for a floor (ratios), False for a ceiling (milliseconds)."""

    def met(self, value: float) -> bool:
        """Whether `value` keeps the promise."""
        return value >= self.bound if self.at_least else value <= self.bound


GOALS = (
    Goal("serve", "decode_vs_raw", "API decode tok/s / raw mlx-lm", 0.97, True),
    Goal("serve", "ttft_minus_raw_ms", "API time to first token - raw mlx-lm (ms)", 10.0, False),
    Goal("serve", "streams_ratio", "4 concurrent streams / 1 stream (tok/s)", 2.0, True),
    Goal("hotswap", "loaded_p50_ms", "checkpoint landed -> serving, p50 (ms)", 50.0, False),
)
INFO = (("hotswap", "swap_cost_p50_ms", "swap cost to the next first token, p50 (ms)"),)
"""Figures printed but not gated: a difference of two first tokens, which a loaded machine
swamps (each first token of the 270M takes seconds there)."""


def run_bench(name: str, out: Path) -> dict:
    """Run `bench/<name>.py --quick --json out` and return what it wrote."""
    command = [sys.executable, str(HERE / f"{name}.py"), "--quick", "--json", str(out)]
    print(f"$ {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def main() -> None:
    """Run the benches, print every goal with its measured value, exit 1 on a miss."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="serve,hotswap", help="comma-separated bench names")
    args = parser.parse_args()
    wanted = args.only.split(",")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-check-") as work:
        for name in wanted:
            results[name] = run_bench(name, Path(work) / f"{name}.json")
    print(f"\nload average {os.getloadavg()[0]:.1f} (2 cores): a busy machine skews ratios")
    missed = 0
    for goal in GOALS:
        if goal.bench not in results:
            continue
        value = results[goal.bench][goal.key]
        ok = goal.met(value)
        missed += not ok
        sign = ">=" if goal.at_least else "<="
        print(f"{'ok  ' if ok else 'MISS'} {goal.what:56} {value:9.2f}  (goal {sign} {goal.bound})")
    for bench, key, what in INFO:
        if bench in results:
            print(f"info {what:56} {results[bench][key]:9.2f}  (goal <= 50 on a quiet machine)")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
