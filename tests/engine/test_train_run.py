"""Whole training runs on the tiny model: checkpoints, early stopping, bad data, events."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import mlx.core as mx
import pytest
from train_files import SYSTEM, chat, parse, toy_rows, train, write_persona

from adapters.registry import Registry
from adapters.training import cli
from adapters.training.events import Best, Checkpoint, Done, Error, Start, Step, Val
from adapters.training.prepare import DataError
from adapters.training.record import read_record
from adapters.training.session import start_session


@pytest.fixture
def persona(tmp_path: Path) -> Path:
    return write_persona(tmp_path / "toy", toy_rows(), valid=toy_rows(4)[:2])


def test_a_run_publishes_loadable_checkpoints_and_a_complete_record(
    persona: Path, tiny_model_dir: Path, persona_home: Path
) -> None:
    from mlx_lm.tuner.utils import load_adapters
    from mlx_lm.utils import load_model

    events, _ = train([str(persona), "--model", str(tiny_model_dir), "--epochs", "2",
                       "--checkpoint-every", "3", "--val-every", "4"])  # fmt: skip
    start, done = events[0], events[-1]
    assert isinstance(start, Start)
    assert isinstance(done, Done)
    assert start.dataset.train_rows == 13
    assert start.dataset.valid_rows == 2
    assert start.total_steps == 2 * 7 == done.step
    steps = [e for e in events if isinstance(e, Step)]
    assert [e.step for e in steps] == list(range(1, 15))
    assert all(e.tokens_per_sec > 0 and e.peak_memory_gb > 0 for e in steps)
    assert steps[-1].epoch == pytest.approx(2.0)
    ckpts = [e.step for e in events if isinstance(e, Checkpoint)]
    assert {3, 6, 9, 12, 14} <= set(ckpts)

    registry = Registry(persona_home / "adapters")
    published = registry.checkpoints("toy", "run-1")
    assert [c.manifest.step for c in published] == sorted(set(ckpts))
    assert registry.marker("toy", "run-1", "latest") == 14
    record = read_record(registry.run_dir("toy", "run-1"))
    assert (record.status, record.reason, record.step) == ("done", "finished", 14)
    assert record.config.training.layers == 4
    assert record.config.system_prompt == SYSTEM
    assert [m.step for m in record.metrics] == list(range(1, 15))

    from adapters.base import content_hash
    from adapters.verify import checkpoint_problems

    base_hash = content_hash(tiny_model_dir)
    for ckpt in published:  # weights hashed in the manifest, config consistent, nothing partial
        assert checkpoint_problems(ckpt, base_hash) == []
        assert sorted(p.name for p in ckpt.path.iterdir()) == [
            "adapter_config.json", "adapters.safetensors", "manifest.json",
            "optimizer.safetensors", "resume.json",
        ]  # fmt: skip
    last = published[-1]
    assert last.manifest.metrics["train_loss"] == pytest.approx(steps[-1].train_loss)
    assert last.manifest.base_hash == base_hash
    model, _ = load_model(tiny_model_dir)
    load_adapters(model, str(last.path))
    saved = mx.load(str(last.path / "adapters.safetensors"))
    assert len(saved) == 4 * 7 * 2
    assert any(mx.abs(v).max().item() > 0 for k, v in saved.items() if k.endswith("lora_b"))


async def test_the_engine_loads_a_trained_checkpoint(
    persona: Path, tiny_model_dir: Path, persona_home: Path
) -> None:
    from server.engine.engine import Engine, GenerationRequest, SamplingParams
    from server.engine.types import AdapterRef

    train([str(persona), "--model", str(tiny_model_dir), "--iters", "2", "--learning-rate", "0.05"])
    ckpt = Registry(persona_home / "adapters").checkpoints("toy", "run-1")[-1]
    engine = await asyncio.to_thread(Engine.load, str(tiny_model_dir), max_batch=2)
    engine.start()
    try:
        ref = AdapterRef(ckpt.manifest, ckpt.path)
        await engine.load_adapter(ref)
        assert ckpt.manifest.key in engine.loaded_adapters()
        prompt = tuple(engine.tokenizer.encode("Robot, what is 1 plus 4?"))
        params = SamplingParams(max_tokens=4, temperature=0.0)
        versions = [
            d.adapter_version async for d in engine.stream(GenerationRequest(prompt, params, ref))
        ]
        assert versions[-1] == "run-1:2"
    finally:
        await engine.aclose()


def test_early_stopping_fires_and_marks_the_best(tmp_path: Path, tiny_model_dir: Path,
                                                 persona_home: Path) -> None:  # fmt: skip
    # Training teaches one answer while validation expects another, so validation gets worse.
    rows = [chat(f"Say the word, robot number {i}.", "Banana banana banana.") for i in range(8)]
    valid = [chat(f"Say the word, robot number {i}.", "Cucumber cucumber.") for i in range(2)]
    folder = write_persona(tmp_path / "toy", rows, valid)
    events, _outcome = train([str(folder), "--model", str(tiny_model_dir), "--epochs", "10",
                             "--learning-rate", "0.02", "--val-every", "1", "--patience", "2",
                             "--checkpoint-every", "100"])  # fmt: skip
    vals = [e for e in events if isinstance(e, Val)]
    bests = [e for e in events if isinstance(e, Best)]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.reason == "early_stop"
    assert done.step < 40
    best = min(vals, key=lambda v: v.val_loss)
    assert bests[-1].step == best.step
    assert vals[-1].step == best.step + 2  # two validations without improvement
    registry = Registry(persona_home / "adapters")
    assert registry.marker("toy", "run-1", "best") == best.step
    steps = {c.manifest.step for c in registry.checkpoints("toy", "run-1")}
    assert {b.step for b in bests} | {done.step} == steps
    record = read_record(registry.run_dir("toy", "run-1"))
    assert (record.status, record.reason, record.best_step) == ("done", "early_stop", best.step)


def test_bad_data_fails_before_the_first_step_with_file_and_line(
    tmp_path: Path, tiny_model_dir: Path, persona_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_persona(tmp_path / "toy", toy_rows(4))
    lines = (folder / "train.jsonl").read_text().splitlines()
    lines[1] = '{"messages": [{"role": "user", "content": "no reply"}'
    lines[3] = json.dumps({"messages": [{"role": "user", "content": "only a question"}]})
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    args = parse([str(folder), "--model", str(tiny_model_dir), "--json"])
    with pytest.raises(DataError) as caught:
        start_session(cli.order_of(args), threading.Event(), lambda _e: None)
    text = str(caught.value)
    assert f"{folder / 'train.jsonl'}:2: not valid JSON" in text
    assert f"{folder / 'train.jsonl'}:4:" in text
    assert "assistant" in text
    assert not (persona_home / "adapters" / "toy").exists() or not any(
        (persona_home / "adapters" / "toy").iterdir()
    )

    handlers = cli.signal.getsignal(cli.signal.SIGINT), cli.signal.getsignal(cli.signal.SIGTERM)
    try:
        assert cli.run(args) == 1
    finally:
        cli.signal.signal(cli.signal.SIGINT, handlers[0])
        cli.signal.signal(cli.signal.SIGTERM, handlers[1])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    event = json.loads(out[0])
    assert event["event"] == "error"
    assert "train.jsonl:2" in event["message"]
    assert isinstance(Error(message=event["message"]), Error)


def test_overrides_are_checked(persona: Path, tiny_model_dir: Path) -> None:
    from adapters.training.config import ConfigError

    args = parse([str(persona), "--model", str(tiny_model_dir), "--rank", "0"])
    with pytest.raises(ConfigError, match="rank must be >= 1"):
        start_session(cli.order_of(args), threading.Event(), lambda _e: None)
    with pytest.raises(SystemExit):  # a value outside the listed choices stops at argparse
        parse([str(persona), "--lr-schedule", "wavy"])


def test_unset_intervals_follow_the_runs_length(
    persona: Path, tiny_model_dir: Path, persona_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The toy card sets warmup but not val_every or checkpoint_every: 7 batches an epoch.
    events, _ = train([str(persona), "--model", str(tiny_model_dir), "--epochs", "1",
                       "--label", "short"])  # fmt: skip
    assert "plan: 7 steps ≈ " in capsys.readouterr().err
    vals = [e.step for e in events if isinstance(e, Val)]
    assert vals == [2, 4, 6, 7]  # about four validations an epoch, not one at the end
    ckpts = {e.step for e in events if isinstance(e, Checkpoint)}
    assert {4, 7} <= ckpts
    record = read_record(Registry(persona_home / "adapters").run_dir("toy", "run-1-short"))
    training = record.config.training
    assert (training.val_every, training.checkpoint_every, training.warmup) == (2, 4, 1)


def test_max_grad_norm_clips_each_steps_gradient(
    tmp_path: Path, tiny_model_dir: Path, persona_home: Path
) -> None:
    # Adam divides by the gradient's own size, so only a norm far below eps shows in the
    # weights: clipped to 1e-9, the LoRA's B factors (zero at the start) barely leave zero.
    moved = {}
    folder = write_persona(tmp_path / "toy", toy_rows(), valid=toy_rows(4)[:2])
    runs = (("plain", []), ("clipped", ["--max-grad-norm", "1e-9"]))
    for number, (name, extra) in enumerate(runs, 1):
        events, _ = train([str(folder), "--model", str(tiny_model_dir), "--iters", "2", *extra])
        assert isinstance(events[-1], Done)
        registry = Registry(persona_home / "adapters")
        (checkpoint,) = registry.checkpoints("toy", f"run-{number}")[-1:]
        weights = mx.load(str(checkpoint.path / "adapters.safetensors"))
        moved[name] = max(float(mx.abs(v).max()) for k, v in weights.items() if "lora_b" in k)
    assert moved["plain"] > 1e-4
    assert moved["clipped"] < moved["plain"] * 1e-3
