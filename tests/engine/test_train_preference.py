"""`persona train --method dpo|orpo` on the tiny model: start, reference, checkpoints, resume."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import mlx.core as mx
import pytest
from train_files import parse, toy_rows, train, write_persona

from adapters.registry import Registry
from adapters.training import cli
from adapters.training.config import ConfigError
from adapters.training.events import Checkpoint, Done, Event, Start, Step, Val
from adapters.training.preference import REFERENCE_FILE
from adapters.training.prepare import PrepareError
from adapters.training.record import read_record
from adapters.training.session import start_session

SETTINGS = ["--iters", "5", "--checkpoint-every", "2", "--val-every", "2",
            "--learning-rate", "0.01", "--val-fraction", "0.2"]  # fmt: skip


def preference_line(i: int) -> str:
    question = f"Robot, what is {i} plus {i + 3}?"
    return json.dumps(
        {
            "input": {"messages": [{"role": "user", "content": question}]},
            "preferred_output": [{"role": "assistant", "content": f"Beep! It is {2 * i + 3}."}],
            "non_preferred_output": [
                {"role": "assistant", "content": "I will not say. " * (1 + i % 3)}
            ],
            "tags": ["idk" if i % 2 else "boundary"],
        }
    )


@pytest.fixture
def persona(tmp_path: Path) -> Path:
    folder = write_persona(tmp_path / "toy", toy_rows())
    (folder / "preference.jsonl").write_text("".join(preference_line(i) + "\n" for i in range(10)))
    return folder


def run_until(argv: list[str], stop_after: int | None = None) -> list[Event]:
    """`persona train` in process, asking it to stop after a given step."""
    events: list[Event] = []
    stop = threading.Event()

    def emit(event: Event) -> None:
        events.append(event)
        if stop_after is not None and isinstance(event, Step) and event.step == stop_after:
            stop.set()

    args = parse(argv)
    trainer = start_session(cli.order_of(args), stop, emit)
    assert trainer is not None
    try:
        trainer.train()
    finally:
        if trainer.lock is not None:
            trainer.lock.close()
    return events


def weights(folder: Path) -> dict[str, mx.array]:
    loaded = mx.load(str(folder / "adapters.safetensors"))
    assert isinstance(loaded, dict)
    return loaded


def test_dpo_needs_a_starting_checkpoint(persona: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"add --from toy@run-N:best"):
        train([str(persona), "--model", str(tiny_model_dir), "--method", "dpo"])


def test_a_persona_without_pairs_cannot_train_a_preference_method(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    folder = write_persona(tmp_path / "plain", toy_rows())
    with pytest.raises(PrepareError, match=r"no preference.jsonl"):
        train([str(folder), "--model", str(tiny_model_dir), "--method", "orpo"])


def test_dpo_from_sft_starts_at_log_two_and_resumes_exactly(
    persona: Path, tiny_model_dir: Path, persona_home: Path
) -> None:
    train([str(persona), "--model", str(tiny_model_dir), "--iters", "3", "--learning-rate", "0.01"])
    registry = Registry(persona_home / "adapters")
    sft = registry.checkpoints("toy", "run-1")[-1]
    argv = [str(persona), "--model", str(tiny_model_dir), "--method", "dpo", "--beta", "0.5",
            "--from", "toy@run-1:latest", *SETTINGS]  # fmt: skip
    with pytest.raises(ConfigError, match="--rank differ"):
        train([*argv, "--rank", "16"])

    events = run_until(argv)
    start = events[0]
    assert isinstance(start, Start)
    assert start.dataset.train_rows + start.dataset.valid_rows == 10
    assert start.config["init_from"] == "toy@run-1:3"
    assert start.config["training"]["method"] == "dpo"
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5]
    # The policy starts as the reference: every margin is 0 and the loss is exactly log 2.
    assert steps[0].train_loss == pytest.approx(math.log(2), abs=1e-5)
    vals = [e.val_loss for e in events if isinstance(e, Val)]
    assert len(vals) == 3
    assert vals[-1] < math.log(2)  # the held-out pairs are preferred more than at the start
    assert isinstance(events[-1], Done)
    run_dir = registry.run_dir("toy", "run-2")
    reference = json.loads((run_dir / REFERENCE_FILE).read_text())
    assert len(reference["train"]) == start.dataset.train_rows
    record = read_record(run_dir)
    assert (record.status, record.config.training.method, record.config.init_from) == (
        "done", "dpo", "toy@run-1:3")  # fmt: skip
    # The run continues the SFT adapter: same shape, and it started from its weights.
    assert record.config.training.rank == sft.manifest.lora.rank

    from adapters.base import content_hash
    from adapters.verify import checkpoint_problems

    final = registry.checkpoints("toy", "run-2")[-1]
    assert checkpoint_problems(final, content_hash(tiny_model_dir)) == []

    stopped = run_until(argv, stop_after=2)
    assert isinstance(stopped[-1], Done)
    assert stopped[-1].reason == "stopped"
    resumed = run_until([str(persona), "--resume", "run-3"])
    assert [e.step for e in resumed if isinstance(e, Step)] == [3, 4, 5]
    expected = {s.step: s.train_loss for s in steps}
    for step in (e for e in resumed if isinstance(e, Step)):
        assert step.train_loss == pytest.approx(expected[step.step], rel=1e-6, abs=1e-6)
    want, got = weights(final.path), weights(registry.checkpoints("toy", "run-3")[-1].path)
    for name, value in want.items():
        assert mx.abs(got[name] - value).max().item() <= 1e-6, name


def test_orpo_from_the_base_model(persona: Path, tiny_model_dir: Path, persona_home: Path) -> None:
    events = run_until([str(persona), "--model", str(tiny_model_dir), "--method", "orpo",
                        *SETTINGS])  # fmt: skip
    steps = [e for e in events if isinstance(e, Step)]
    assert len(steps) == 5
    assert all(math.isfinite(s.train_loss) and s.train_loss > 0 for s in steps)
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [2, 4, 5]
    run_dir = Registry(persona_home / "adapters").run_dir("toy", "run-1")
    assert not (run_dir / REFERENCE_FILE).exists()  # ORPO needs no reference model
    assert read_record(run_dir).config.init_from is None
