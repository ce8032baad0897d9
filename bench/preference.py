"""Preference tuning against SFT: speed and peak memory of `persona train --method sft|dpo|orpo`.

All three train the embedded Gemma 3 270M on the same Juni conversations with the same LoRA
settings (rank 8, scale 20, last 8 blocks, batch 4, constant learning rate), each in its own
process. SFT learns the preferred replies; DPO and ORPO learn pairs whose non-preferred reply is
another Juni reply to a different prompt, so both sides have realistic lengths. DPO starts from
the SFT run's last checkpoint (its reference model), as `persona train` requires; ORPO from the
base. A step of B pairs runs 2B sequences, so step time is expected near 2x SFT's; tokens/s
counts every input token a step processes (both sides of each pair).

Reported per method: median seconds per step and tokens/s over the steps after the first, peak
resident memory of the process, and the whole run's wall time (DPO's includes its one reference
pass over every pair).

Usage: python bench/preference.py [--pairs 16] [--iters 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.blas import ensure_fast_blas  # noqa: E402  (before anything imports mlx)

BLAS = ensure_fast_blas()

SETTINGS = ["--batch-size", "4", "--rank", "8", "--layers", "8", "--scale", "20",
            "--learning-rate", "1e-5", "--lr-schedule", "constant", "--warmup", "0",
            "--val-every", "1000000", "--val-fraction", "0", "--max-seq-length", "384"]  # fmt: skip


def make_persona(folder: Path, pairs: int) -> Path:
    """A persona with `pairs` single-turn Juni rows as SFT data and as preference pairs."""
    from data.card import load_card
    from data.dataset import read_dataset
    from data.records import ChatRecord

    juni = ROOT / "data" / "samples" / "juni"
    card = load_card(juni)
    rows = [r.record for r in read_dataset(juni / "train.jsonl").rows]
    single = [r for r in rows if isinstance(r, ChatRecord) and len(r.messages) == 2][: pairs + 1]
    persona = folder / "juni-bench"
    persona.mkdir(parents=True)
    (persona / "persona.toml").write_text(
        f'name = "juni-bench"\nsystem_prompt = """{card.system_prompt}"""\n'
    )
    sft, prefs = [], []
    for i, record in enumerate(single[:pairs]):
        user, reply = record.messages
        other = single[i + 1].messages[1]
        sft.append({"messages": [{"role": "user", "content": user.content},
                                 {"role": "assistant", "content": reply.content}]})  # fmt: skip
        prefs.append({
            "input": {"messages": [{"role": "user", "content": user.content}]},
            "preferred_output": [{"role": "assistant", "content": reply.content}],
            "non_preferred_output": [{"role": "assistant", "content": other.content}],
        })  # fmt: skip
    (persona / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    (persona / "preference.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefs))
    return persona


def run(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """One `persona train --json` child: median step time and tokens/s, peak RSS (the trainer's
    own `peak_memory_gb`), wall time."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", "studio.cli", "train", *argv, "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({child.returncode}):\n{err[-3000:]}")
    steps = [e for e in map(json.loads, out.splitlines()) if e["event"] == "step"]
    timed = steps[1:]  # the first step also compiles
    return {
        "step_s": statistics.median(1.0 / e["it_per_sec"] for e in timed),
        "tok_s": statistics.median(e["tokens_per_sec"] for e in timed),
        "peak": max(e["peak_memory_gb"] for e in steps),
        "wall": time.perf_counter() - start,
    }


def main() -> None:
    """Train SFT, then DPO from it, then ORPO from the base; print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--iters", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-preference-") as tmp:
        work = Path(tmp)
        persona = make_persona(work, args.pairs)
        env = dict(os.environ, PERSONA_HOME=str(work / "home"))
        common = [str(persona), "--iters", str(args.iters), *SETTINGS]
        print(BLAS.note)
        print(f"{args.pairs} rows / pairs, batch 4, {args.iters} steps per method")
        results = {"sft": run(common, env)}
        results["dpo"] = run([*common, "--method", "dpo", "--from", "juni-bench@run-1"], env)
        results["orpo"] = run([*common, "--method", "orpo"], env)
    sft = results["sft"]
    print(f"{'method':<8}{'s/step':>9}{'tok/s':>9}{'vs sft':>9}{'peak RSS (GB)':>15}"
          f"{'vs sft':>9}{'run (s)':>9}")  # fmt: skip
    for name, r in results.items():
        print(f"{name:<8}{r['step_s']:>9.2f}{r['tok_s']:>9.1f}{r['tok_s'] / sft['tok_s']:>8.2f}x"
              f"{r['peak']:>15.2f}{r['peak'] / sft['peak']:>8.2f}x{r['wall']:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
