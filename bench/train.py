"""Training speed and peak memory: `persona train` against `mlx_lm lora`, side by side.

Both train the embedded Gemma 3 270M on the same rows (single-turn Juni conversations, the system
prompt written into each row) with the same settings: LoRA rank 8, scale 20 on the last 8 blocks,
batch 4, Adam at a constant learning rate, loss on the replies only (`--mask-prompt`). Each runs
two epochs and one step in its own process. The timed window is the second epoch, between the
checkpoints written after steps E and 2E: in it both have trained on exactly every row once, with
no validation. Speed is the rows' tokens (prompt and reply) per second of that window; peak memory
is each process's maximum resident set. `--profile` also splits one step into its phases (process
CPU time, so other load on the machine matters less).

Usage: python bench/train.py [--rows 40] [--max-seq-length 256] [--profile] [--skip-mlx-lm]
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

from adapters.blas import ensure_fast_blas  # noqa: E402  (before anything imports mlx)

BLAS = ensure_fast_blas()

BATCH, RANK, LAYERS, SCALE, LR = 4, 8, 8, 20.0, 1e-4


def make_data(folder: Path, rows: int, max_len: int) -> tuple[Path, Path, int]:
    """A persona folder and an mlx-lm data folder with the same rows; returns their token count."""
    from adapters.base import prepare_embedded
    from adapters.training.model import load_tokenizer
    from data.card import load_card
    from data.dataset import read_dataset
    from data.records import as_messages, with_system
    from data.tokens import chat_ids

    juni = ROOT / "data" / "samples" / "juni"
    card = load_card(juni)
    tokenizer = load_tokenizer(prepare_embedded().path)
    picked: list[tuple[str, int]] = []
    for row in read_dataset(juni / "train.jsonl").rows:
        messages = with_system(as_messages(row.record), card.system_prompt)
        if len(messages) != 3:
            continue
        length = len(chat_ids(tokenizer, messages))
        if length <= max_len:
            line = {"messages": [{"role": m.role, "content": m.content} for m in messages]}
            picked.append((json.dumps(line), length))
        if len(picked) == rows + BATCH:
            break
    if len(picked) < rows + BATCH:
        raise SystemExit(f"only {len(picked)} single-turn rows fit in {max_len} tokens")
    train, valid = picked[:rows], picked[rows:]
    persona, mlx_data = folder / "juni-bench", folder / "mlx-data"
    for target in (persona, mlx_data):
        target.mkdir(parents=True)
        (target / "train.jsonl").write_text("".join(f"{text}\n" for text, _ in train))
        (target / "valid.jsonl").write_text("".join(f"{text}\n" for text, _ in valid))
    (persona / "persona.toml").write_text(
        f'name = "juni-bench"\nsystem_prompt = """{card.system_prompt}"""\n'
    )
    return persona, mlx_data, sum(n for _, n in train)


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a child to completion; return (wall seconds, peak RSS in GB)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({child.returncode}):\n{err[-3000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / (1 << 20)


def run_ours(persona: Path, work: Path, epoch_steps: int, max_len: int) -> dict[str, float]:
    """`persona train` with the shared settings; the window is read from two manifests."""
    adapters = work / "adapters"
    argv = [sys.executable, "-P", "-m", "studio.cli", "train", str(persona), "--json",
            "--adapters", str(adapters), "--iters", str(2 * epoch_steps + 1),
            "--checkpoint-every", str(epoch_steps), "--val-every", "1000000",
            "--batch-size", str(BATCH), "--rank", str(RANK), "--layers", str(LAYERS),
            "--scale", str(SCALE), "--learning-rate", str(LR), "--lr-schedule", "constant",
            "--warmup", "0", "--max-seq-length", str(max_len)]  # fmt: skip
    env = dict(os.environ, PERSONA_HOME=str(work / "home"))
    wall, peak = run_child(argv, env)
    ckpts = adapters / "juni-bench" / "run-1" / "checkpoints"
    first, second = (ckpts / f"{s:07d}" / "manifest.json" for s in (epoch_steps, 2 * epoch_steps))
    return {"window": second.stat().st_mtime - first.stat().st_mtime, "wall": wall, "peak": peak}


def run_mlx_lm(data: Path, work: Path, epoch_steps: int, max_len: int) -> dict[str, float]:
    """`python -m mlx_lm lora` with the same settings; the window is read from two saves."""
    from adapters.base import prepare_embedded
    from adapters.blas import CANDIDATES

    out = work / "mlx-adapters"
    total = 2 * epoch_steps + 1
    argv = [sys.executable, "-P", "-m", "mlx_lm", "lora", "--model", str(prepare_embedded().path),
            "--train", "--data", str(data), "--fine-tune-type", "lora",
            "--num-layers", str(LAYERS), "--batch-size", str(BATCH), "--iters", str(total),
            "--learning-rate", str(LR), "--steps-per-report", str(total),
            "--steps-per-eval", "1000000", "--val-batches", "1", "--save-every", str(epoch_steps),
            "--adapter-path", str(out), "--max-seq-length", str(max_len), "--mask-prompt",
            "--seed", "0"]  # fmt: skip
    env = dict(os.environ)
    blas = next((c for c in CANDIDATES if Path(c).exists()), None)
    if blas:
        env["LD_PRELOAD"] = blas  # the same OpenBLAS `persona train` binds to
    wall, peak = run_child(argv, env)
    first, second = (out / f"{s:07d}_adapters.safetensors" for s in (epoch_steps, 2 * epoch_steps))
    return {"window": second.stat().st_mtime - first.stat().st_mtime, "wall": wall, "peak": peak}


def profile(persona: Path, max_len: int) -> None:
    """Split one training step into phases, for both losses, in process CPU seconds."""
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np
    from mlx_lm.tuner.trainer import default_loss

    from adapters.training.batching import collate, epoch_batches
    from adapters.training.config import RunConfig
    from adapters.training.loss import TokenLoss, head_loss
    from adapters.training.model import make_trainable
    from adapters.training.prepare import prepare
    from data.card import Training

    training = Training(rank=RANK, layers=LAYERS, scale=SCALE, max_seq_length=max_len)
    config = RunConfig(persona="juni-bench", base_model="embedded", training=training,
                       system_prompt="", train_file=str(persona / "train.jsonl"),
                       valid_file=str(persona / "valid.jsonl"))  # fmt: skip
    prepared = prepare(config, lambda _m: None)
    model = prepared.base.model
    make_trainable(model, training)
    examples = prepared.train
    rows = epoch_batches([e.length for e in examples], BATCH, 0, 0)[0]
    batch = collate(examples, rows)
    loss = TokenLoss(model)
    assert loss.head is not None
    head = loss.head
    positions = mx.array(batch.positions)

    def cpu(fn) -> float:  # type: ignore[no-untyped-def]
        fn()
        best = float("inf")
        for _ in range(2):
            start = time.process_time()
            fn()
            best = min(best, time.process_time() - start)
        return best

    def body() -> mx.array:
        h = head.body(mx.array(batch.inputs))
        picked = h.reshape(-1, h.shape[-1])[positions]
        mx.eval(picked)
        return picked

    hidden = body()
    targets = mx.array(batch.targets)

    def output_layer(grad: bool) -> None:
        mx.eval(head_loss(hidden, targets, head.weight, grad=grad))

    phases = {
        "body forward (18 blocks)": cpu(body),
        "output layer: logits + loss": cpu(lambda: output_layer(False)),
        "output layer: logits + loss + d(hidden)": cpu(lambda: output_layer(True)),
        "whole step (persona train)": cpu(lambda: loss.value_and_grad(model, batch)),
    }
    tokens = np.zeros((len(rows), batch.inputs.shape[1] + 1), dtype=np.int32)
    for b, i in enumerate(rows):
        tokens[b, : examples[i].length] = examples[i].tokens
    lengths = mx.array([[0, examples[i].length - 1] for i in rows])
    full = nn.value_and_grad(model, default_loss)
    phases["whole step (mlx-lm default_loss)"] = cpu(
        lambda: mx.eval(full(model, mx.array(tokens), lengths))
    )
    print(f"one batch: {batch.inputs.shape[0]} x {batch.inputs.shape[1]} tokens, "
          f"{len(batch.targets)} learned")  # fmt: skip
    for name, seconds in phases.items():
        print(f"  {name:<42}{seconds:>8.2f} s CPU")


def main() -> None:
    """Run both trainers and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=40, help="rows per epoch (multiple of 4)")
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--profile", action="store_true", help="also split one step into phases")
    parser.add_argument("--skip-mlx-lm", action="store_true")
    args = parser.parse_args()
    if args.rows % BATCH:
        raise SystemExit(f"--rows must be a multiple of {BATCH}")
    epoch_steps = args.rows // BATCH
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        persona, mlx_data, tokens = make_data(work, args.rows, args.max_seq_length)
        print(BLAS.note)
        print(f"{args.rows} rows, {tokens} tokens per epoch, {epoch_steps} steps per epoch")
        if args.profile:
            profile(persona, args.max_seq_length)
        results = {"persona train": run_ours(persona, work, epoch_steps, args.max_seq_length)}
        if not args.skip_mlx_lm:
            results["mlx_lm lora"] = run_mlx_lm(mlx_data, work, epoch_steps, args.max_seq_length)
    print(f"{'trainer':<16}{'epoch 2 (s)':>12}{'tok/s':>9}{'peak RSS (GB)':>15}{'run (s)':>9}")
    for name, r in results.items():
        rate = tokens / r["window"]
        print(f"{name:<16}{r['window']:>12.1f}{rate:>9.1f}{r['peak']:>15.2f}{r['wall']:>9.0f}")
    if len(results) == 2:
        ours, theirs = results["persona train"], results["mlx_lm lora"]
        print(f"speed: {theirs['window'] / ours['window']:.2f}x mlx_lm lora; "
              f"peak memory: {ours['peak'] / theirs['peak']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
