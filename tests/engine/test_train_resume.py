"""True resume: a killed or stopped `persona train` continues exactly like an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlx.core as mx
import pytest
from train_files import toy_rows, train, write_persona

from adapters.registry import Registry
from adapters.training.events import Checkpoint, Done, Event, Start, Step, Val, decode_event
from adapters.training.record import read_record

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ["--iters", "9", "--checkpoint-every", "2", "--val-every", "3", "--dropout", "0.1",
            "--learning-rate", "0.01"]  # fmt: skip


def spawn(argv: list[str], home: Path) -> subprocess.Popen[str]:
    """`persona train ... --json` in a child process."""
    env = dict(os.environ, PERSONA_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "studio.cli", "train", *argv, "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events_of(process: subprocess.Popen[str]) -> Iterator[Event]:
    """Decode each stdout line; every line must be an event."""
    assert process.stdout is not None
    for line in process.stdout:
        yield decode_event(line)


def weights(path: Path) -> dict[str, mx.array]:
    loaded = mx.load(str(path / "adapters.safetensors"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def persona(tmp_path: Path) -> Path:
    return write_persona(tmp_path / "toy", toy_rows(), valid=toy_rows(4)[:2])


def test_resume_after_sigkill_matches_an_uninterrupted_run(
    persona: Path, tiny_model_dir: Path, persona_home: Path
) -> None:
    reference, _ = train([str(persona), "--model", str(tiny_model_dir), *SETTINGS])

    child = spawn([str(persona), "--model", str(tiny_model_dir), *SETTINGS], persona_home)
    for event in events_of(child):
        if isinstance(event, Checkpoint) and event.step >= 4:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=120)
    child.communicate(timeout=120)  # reads what is left and closes both pipes
    assert child.returncode == -signal.SIGKILL
    registry = Registry(persona_home / "adapters")
    assert read_record(registry.run_dir("toy", "run-2")).status == "training"
    killed_at = registry.checkpoints("toy", "run-2")[-1].manifest.step

    resumed, _outcome = train([str(persona), "--resume", "run-2"])
    start = resumed[0]
    assert isinstance(start, Start)
    assert start.resumed_from == killed_at
    steps = [e for e in resumed if isinstance(e, Step)]
    assert steps[0].step == killed_at + 1
    expected = {e.step: e for e in reference if isinstance(e, Step)}
    for step in steps:
        ref = expected[step.step]
        assert step.train_loss == pytest.approx(ref.train_loss, rel=1e-6, abs=1e-6)
        assert step.lr == pytest.approx(ref.lr, rel=1e-7)
        assert step.epoch == ref.epoch
    ref_vals = {e.step: e.val_loss for e in reference if isinstance(e, Val)}
    for val in (e for e in resumed if isinstance(e, Val)):
        assert val.val_loss == pytest.approx(ref_vals[val.step], rel=1e-6)

    final_ref = weights(registry.checkpoints("toy", "run-1")[-1].path)
    final = weights(registry.checkpoints("toy", "run-2")[-1].path)
    assert set(final) == set(final_ref)
    for name, value in final_ref.items():
        assert mx.abs(final[name] - value).max().item() <= 1e-6, name
    record = read_record(registry.run_dir("toy", "run-2"))
    assert (record.status, record.step) == ("done", 9)
    assert [m.step for m in record.metrics] == list(range(1, 10))


def test_sigint_checkpoints_and_stops_then_resume_finishes(
    persona: Path, tiny_model_dir: Path, persona_home: Path
) -> None:
    settings = [*SETTINGS, "--checkpoint-every", "100", "--val-every", "100"]
    child = spawn([str(persona), "--model", str(tiny_model_dir), *settings], persona_home)
    seen: list[Event] = []
    for event in events_of(child):
        seen.append(event)
        if isinstance(event, Step) and event.step == 2:
            child.send_signal(signal.SIGINT)
    assert child.wait(timeout=120) == 130
    child.communicate(timeout=120)  # reads what is left and closes both pipes
    done = seen[-1]
    assert isinstance(done, Done)
    assert done.reason == "stopped"
    assert 2 <= done.step < 9
    # The only checkpoint is the one the stop wrote, announced before Done.
    assert [e.step for e in seen if isinstance(e, Checkpoint)] == [done.step]
    assert isinstance(seen[-2], Checkpoint)
    registry = Registry(persona_home / "adapters")
    assert [c.manifest.step for c in registry.checkpoints("toy", "run-1")] == [done.step]
    assert read_record(registry.run_dir("toy", "run-1")).status == "stopped"

    resumed, _outcome = train([str(persona), "--resume", "run-1"])
    assert next(e.step for e in resumed if isinstance(e, Step)) == done.step + 1
    assert read_record(registry.run_dir("toy", "run-1")).status == "done"


def test_resume_refuses_changed_settings(persona: Path, tiny_model_dir: Path) -> None:
    from adapters.training.config import ConfigError

    train([str(persona), "--model", str(tiny_model_dir), "--iters", "2"])
    with pytest.raises(ConfigError, match="drop --rank"):
        train([str(persona), "--resume", "run-1", "--rank", "16"])
