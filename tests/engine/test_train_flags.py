"""`persona train`'s flags build the same typed order a fine-tuning job writes."""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import pytest
from adapter_files import publish_random
from train_files import EVERY_FIELD, parse, toy_rows, write_persona

from adapters.training import cli
from adapters.training.config import ConfigError
from adapters.training.order import (
    GuardRun,
    NewRun,
    ResumeRun,
    TrainOrder,
    decode_order,
    encode_order,
)
from adapters.training.session import start_session
from data.card import Training


def test_the_flags_build_the_same_order_the_trainer_reads(tmp_path: Path) -> None:
    folder = write_persona(tmp_path / "toy", toy_rows(4))
    training = msgspec.structs.replace(EVERY_FIELD, method="orpo", rpo_alpha=0.0)
    argv = [str(folder), "--model", "embedded", "--iters", "9", "--label", "grumpy",
            "--adapters", str(tmp_path / "registry"), "--epochs", "2",
            "--grad-checkpoint"]  # fmt: skip
    for name in Training.__struct_fields__:
        value = getattr(training, name)
        flag = "--" + name.replace("_", "-")
        if name in ("epochs", "grad_checkpoint"):
            continue
        argv += [flag, ",".join(value) if isinstance(value, list) else str(value)]
    (folder / "preference.jsonl").write_text("")
    order = cli.order_of(parse(argv))
    assert isinstance(order.job, NewRun)
    assert order.job.config.training == training
    assert (order.job.config.iters, order.job.label) == (9, "grumpy")
    assert order.job.config.train_file == str(folder / "preference.jsonl")
    assert order.adapters == str(tmp_path / "registry")
    assert decode_order(encode_order(order)) == order


def test_resume_and_guard_flags_build_their_orders(tmp_path: Path) -> None:
    folder = write_persona(tmp_path / "toy", toy_rows(4))
    resume = cli.order_of(parse([str(folder), "--resume", "run-2"]))
    assert resume.job == ResumeRun(persona="toy", run="run-2")
    with pytest.raises(ConfigError, match="drop --rank, --from"):
        cli.order_of(parse([str(folder), "--resume", "run-2", "--rank", "4", "--from", "x@run-1"]))
    guard = cli.order_of(parse([str(folder), "--method", "guard", "--seed", "5"]))
    assert guard.job == GuardRun(persona=str(folder), base_model=None, seed=5)


def test_a_start_checkpoint_fixes_the_shape_the_flags_and_a_written_order_must_agree_with(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    folder = write_persona(tmp_path / "toy", toy_rows(4))  # its card says rank 4, layers 4
    root = tmp_path / "registry"
    ckpt = publish_random(root, "toy", tiny_model_dir, rank=4, num_layers=2, step=10)
    argv = [str(folder), "--from", "toy@run-1:latest", "--adapters", str(root)]
    order = cli.order_of(parse(argv))
    assert isinstance(order.job, NewRun)
    config = order.job.config
    assert (config.training.rank, config.training.layers) == (4, 2)
    assert (config.init_from, config.init_sha256) == ("toy@run-1:10", ckpt.manifest.weights_sha256)
    with pytest.raises(ConfigError, match="--layers differ from the checkpoint"):
        cli.order_of(parse([*argv, "--layers", "3"]))
    # A written order that contradicts its checkpoint stops before any data or weights load.
    wrong = msgspec.structs.replace(
        config, training=msgspec.structs.replace(config.training, rank=8)
    )
    bad = TrainOrder(job=NewRun(config=wrong), adapters=str(root))
    with pytest.raises(
        ConfigError, match=r"training\.rank differs from the starting checkpoint toy@run-1:10"
    ):
        start_session(decode_order(encode_order(bad)), threading.Event(), lambda _e: None)
