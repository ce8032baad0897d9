"""Export speed and size, and data-parallel training throughput on this machine.

1. `persona export juni --to peft|gguf|mlx|gguf-full|ollama` of the shipped 270M sample adapter,
   each as a user runs it (a fresh `persona` process, fresh home, so the sample gets seeded):
   wall time and the size of what it wrote.
2. `persona train` on the embedded 270M for a few steps of batch 4 (Juni rows), as one process and
   as 2 processes under `mlx.launch --backend ring` on this machine: trained tokens per second
   over the steps after the first (the global batch's tokens per step time).

Usage: python bench/export.py [--steps 4] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.home import cache_dir  # noqa: E402

PERSONA = [sys.executable, "-P", "-m", "studio"]
LAUNCH = Path(sys.executable).parent / "mlx.launch"
FORMATS = ("peft", "gguf", "ollama", "mlx", "gguf-full", "gguf-full q8_0")


def env_for(home: Path) -> dict[str, str]:
    """A fresh home but the shared cache (the prepared base model is not rebuilt)."""
    return dict(os.environ, PERSONA_HOME=str(home), PERSONA_CACHE=str(cache_dir()),
                PYTHONPATH=str(ROOT))  # fmt: skip


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_exports(work: Path) -> None:
    print("| format | wall time (new process) | size |")
    print("|---|---|---|")
    for spec in FORMATS:
        name, *quant = spec.split()
        home = work / f"home-{name}-{len(quant)}"
        out = work / f"out-{name}-{len(quant)}"
        argv = ["export", "juni", "--to", name, "--out", str(out)]
        if quant:
            argv += ["--quant", quant[0]]
        tic = time.perf_counter()
        subprocess.run([*PERSONA, *argv], env=env_for(home), check=True, capture_output=True)
        seconds = time.perf_counter() - tic
        print(f"| `{spec}` | {seconds:.1f} s | {folder_size(out) / 1e6:.1f} MB |", flush=True)


def train_tokens_per_sec(work: Path, ranks: int, steps: int) -> tuple[float, float]:
    """(trained tokens/s after the first step, wall seconds) of one short run."""
    home = work / f"train-{ranks}"
    command = [*PERSONA, "train", "juni", "--iters", str(steps), "--val-every", "1000",
               "--checkpoint-every", "1000", "--json"]  # fmt: skip
    if ranks > 1:
        command = [str(LAUNCH), "--backend", "ring", "-n", str(ranks), *command]
    tic = time.perf_counter()
    done = subprocess.run(command, env=env_for(home), capture_output=True, text=True, check=True)
    wall = time.perf_counter() - tic
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    rates = [e["tokens_per_sec"] for e in events if e["event"] == "step" and e["step"] > 1]
    return sum(rates) / len(rates), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="persona-bench-export-") as tmp:
        work = Path(tmp)
        bench_exports(work)
        if args.skip_train:
            return 0
        print("\n| persona train, 270M, batch 4 | trained tok/s | wall |")
        print("|---|---|---|")
        one, wall_one = train_tokens_per_sec(work, 1, args.steps)
        print(f"| 1 process | {one:.1f} | {wall_one:.0f} s |", flush=True)
        two, wall_two = train_tokens_per_sec(work, 2, args.steps)
        print(f"| 2 processes, ring over loopback | {two:.1f} ({two / one:.2f}x) | "
              f"{wall_two:.0f} s |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
