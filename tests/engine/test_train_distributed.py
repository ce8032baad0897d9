"""Data-parallel `persona train` over 2 local processes (mlx.launch, ring backend over TCP).

Each rank takes its share of every global batch and the summed gradients give the update a
single process computes on the whole batch, so losses must equal a single-process run with the
same global batch to 1e-5, and so must the final weights, but for the few elements Adam moved
on a gradient at rounding level (see below). Only rank 0 writes a run folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from train_files import toy_rows, write_persona

LAUNCH = Path(sys.executable).parent / "mlx.launch"


def launch_reason() -> str | None:
    """Why two ranks cannot be launched here, or None."""
    if not LAUNCH.exists():
        return "mlx.launch is not installed next to this Python"
    return None


pytestmark = pytest.mark.skipif(launch_reason() is not None, reason=str(launch_reason()))


def run_train(argv: list[str], home: Path, ranks: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PERSONA_HOME=str(home))
    command = [sys.executable, "-P", "-m", "studio", "train", *argv]
    if ranks > 1:
        command = [str(LAUNCH), "--backend", "ring", "-n", str(ranks), *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip


def losses(run_dir: Path) -> tuple[list[float], list[float]]:
    metrics = json.loads((run_dir / "run.json").read_text())["metrics"]
    train = [m["train_loss"] for m in metrics]
    val = [m["val_loss"] for m in metrics if "val_loss" in m]
    return train, val


def test_two_ranks_equal_one_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    persona = write_persona(tmp_path / "toy", toy_rows(), valid=toy_rows(5)[:3])
    # 13 rows in batches of 4: the last batch has one row, so rank 1 has none in that step.
    argv = [str(persona), "--model", str(tiny_model_dir), "--epochs", "1", "--batch-size", "4",
            "--val-every", "2", "--checkpoint-every", "100", "--json"]  # fmt: skip
    single, double = tmp_path / "one", tmp_path / "two"
    one = run_train(argv, single, 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_train(argv, double, 2)
    if two.returncode != 0 and "ring" in two.stderr.lower() and "connect" in two.stderr.lower():
        pytest.skip(f"a second process could not connect over TCP: {two.stderr[-500:]}")
    assert two.returncode == 0, two.stderr[-3000:]
    runs = sorted((double / "adapters" / "toy").iterdir())
    assert [r.name for r in runs] == ["run-1"]  # rank 1 wrote nothing
    events = [json.loads(line) for line in two.stdout.splitlines() if line.startswith("{")]
    assert sum(e["event"] == "done" for e in events) == 1  # and printed nothing

    run_one, run_two = single / "adapters" / "toy" / "run-1", runs[0]
    train_one, val_one = losses(run_one)
    train_two, val_two = losses(run_two)
    assert len(train_one) == len(train_two) == 4
    np.testing.assert_allclose(train_two, train_one, atol=1e-5)
    assert len(val_one) == len(val_two) >= 2
    np.testing.assert_allclose(val_two, val_one, atol=1e-5)
    last_one = sorted((run_one / "checkpoints").iterdir())[-1]
    last_two = sorted((run_two / "checkpoints").iterdir())[-1]
    assert last_one.name == last_two.name
    w1 = load_file(str(last_one / "adapters.safetensors"))
    w2 = load_file(str(last_two / "adapters.safetensors"))
    assert w1.keys() == w2.keys()
    diff = np.concatenate([np.abs(w2[n] - w1[n]).ravel() for n in sorted(w1)])
    moved = np.concatenate([np.abs(w1[n]).ravel() for n in sorted(w1)])
    assert moved.max() > 0.05  # the weights did train
    # Adding the ranks' partial sums rounds differently from one process's sum (about 1e-7
    # relative). Adam turns a gradient element at that rounding level, g / (|g| + eps) with
    # eps = 1e-8, into a step of up to the learning rate: a handful of elements may end 1e-5
    # apart (measured: 2 of 16,384, at most 1.3e-5); the median element differs by < 1e-7.
    assert (diff > 1e-5).mean() < 1e-3, np.sort(diff)[-5:]
    assert diff.max() <= 5e-5, np.sort(diff)[-5:]
    assert np.median(diff) < 1e-7


def test_two_ranks_resume_a_stopped_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    from train_files import parse

    from adapters.training import cli
    from adapters.training.events import Step
    from adapters.training.session import start_session

    persona = write_persona(tmp_path / "toy", toy_rows(), valid=toy_rows(5)[:3])
    argv = [str(persona), "--model", str(tiny_model_dir), "--epochs", "1", "--batch-size", "4",
            "--val-every", "2", "--checkpoint-every", "100", "--json"]  # fmt: skip
    reference = run_train(argv, tmp_path / "reference", 1)
    assert reference.returncode == 0, reference.stderr[-3000:]

    # One process stops after step 2 (a checkpoint with its resume state), two ranks finish it.
    adapters = tmp_path / "resumed" / "adapters"
    stop = threading.Event()

    def emit(event: object) -> None:
        if isinstance(event, Step) and event.step == 2:
            stop.set()

    args = parse([*argv[:-1], "--adapters", str(adapters)])
    trainer = start_session(cli.order_of(args), stop, emit)
    assert trainer is not None
    try:
        assert trainer.train().reason == "stopped"
    finally:
        if trainer.lock is not None:
            trainer.lock.close()
    del trainer
    resumed = run_train([str(persona), "--resume", "run-1", "--adapters", str(adapters), "--json"],
                        tmp_path / "resumed", 2)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    run_ref = tmp_path / "reference" / "adapters" / "toy" / "run-1"
    run_res = adapters / "toy" / "run-1"
    train_ref, val_ref = losses(run_ref)
    train_res, val_res = losses(run_res)
    assert len(train_res) == len(train_ref) == 4
    np.testing.assert_allclose(train_res, train_ref, atol=1e-5)
    np.testing.assert_allclose(val_res, val_ref, atol=1e-5)
    w1 = load_file(str(sorted((run_ref / "checkpoints").iterdir())[-1] / "adapters.safetensors"))
    w2 = load_file(str(sorted((run_res / "checkpoints").iterdir())[-1] / "adapters.safetensors"))
    diff = np.concatenate([np.abs(w2[n] - w1[n]).ravel() for n in sorted(w1)])
    assert (diff > 1e-5).mean() < 1e-3, np.sort(diff)[-5:]
    assert diff.max() <= 5e-5, np.sort(diff)[-5:]
