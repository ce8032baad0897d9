"""A scripted stand-in for the `persona` command's `train --json` and `eval --json FILE`.

Tests point `TuiSettings.persona_command` at this script, so the TUI's real subprocess code runs
against output that is known in advance. `FAKE_PERSONA_LOG` names a file that receives each argv.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

STEPS = int(os.environ.get("FAKE_TRAIN_STEPS", "4"))
PAUSE = float(os.environ.get("FAKE_TRAIN_PAUSE", "0.05"))


def emit(**event: object) -> None:
    print(json.dumps(event), flush=True)


def train(args: list[str]) -> int:
    persona = args[0]
    if os.environ.get("FAKE_TRAIN_FAIL"):
        print("Traceback (most recent call last):\nValueError: dataset is empty", file=sys.stderr)
        return 1
    run = args[args.index("--resume") + 1] if "--resume" in args else "run-1"
    stopped = False

    def on_sigint(_signum: int, _frame: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGINT, on_sigint)
    dataset = {
        "train_rows": 20,
        "valid_rows": 2,
        "train_tokens": 900,
        "learned_tokens": 500,
        "valid_tokens": 90,
        "batches_per_epoch": STEPS,
        "train_sha256": "0" * 64,
    }
    emit(
        event="start",
        run=run,
        persona=persona,
        config={"rank": 8},
        dataset=dataset,
        total_steps=STEPS,
    )
    for step in range(1, STEPS + 1):
        time.sleep(PAUSE)
        emit(
            event="step",
            step=step,
            epoch=step / STEPS,
            train_loss=3.0 - step * 0.4,
            lr=1e-4,
            tokens_per_sec=40.0,
            it_per_sec=1.0,
            eta_sec=(STEPS - step) * 1.0,
            peak_memory_gb=1.0,
        )
        if step % 2 == 0:
            emit(event="val", step=step, val_loss=3.1 - step * 0.3)
            emit(
                event="checkpoint", step=step, path=f"/x/{run}/{step:07d}", version=f"{run}:{step}"
            )
            emit(event="best", step=step, val_loss=3.1 - step * 0.3)
        if stopped:
            emit(event="done", step=step, reason="stopped")
            return 0
    emit(event="done", step=STEPS, reason="finished")
    return 0


def evaluate(args: list[str]) -> int:
    persona = args[0]
    out = args[args.index("--json") + 1]
    models = args[args.index("--models") + 1 :] if "--models" in args else [persona]
    for done in range(1, 3):
        print(f"\r  {done}/2 replies", end="", file=sys.stderr, flush=True)
    result = {
        "persona": persona,
        "models": [
            {
                "model": m,
                "replies": 2,
                "errors": 0,
                "score": 0.5 + 0.1 * i,
                "completion_rate": 1.0,
                "criteria_pass": 0.5,
                "looping_rate": 0.0,
                "length": {"mean": 42.0, "cv": 0.3, "in_range": 1.0, "ks": None},
                "by_category": {"idk": 1.0},
            }
            for i, m in enumerate(models)
        ],
        "samples": [
            {
                "case_id": "idk-01",
                "category": "idk",
                "model": m,
                "text": f"Reply from {m}.",
                "criteria": {"passed": i == 0, "failures": [] if i == 0 else ["too short"]},
            }
            for i, m in enumerate(models)
        ],
        "seed": 0,
        "samples_per_prompt": 1,
        "created": 0.0,
    }
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


def main() -> int:
    argv = sys.argv[1:]
    if log := os.environ.get("FAKE_PERSONA_LOG"):
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(argv) + "\n")
    command, rest = argv[0], argv[1:]
    if command == "train":
        return train(rest)
    if command == "eval":
        return evaluate(rest)
    print(f"persona: error: argument COMMAND: invalid choice: '{command}'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
