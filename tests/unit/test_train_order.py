"""The trainer's typed order: what the flags build, what a job writes, what the trainer reads."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import msgspec
import pytest
from train_files import toy_rows, write_persona

from adapters.training import cli
from adapters.training.config import ConfigError, RunConfig
from adapters.training.order import (
    GuardRun,
    NewRun,
    ResumeRun,
    TrainOrder,
    decode_order,
    encode_order,
    read_order,
)
from data.card import Training
from data.home import studio_command
from server.jobs.trainer import train_command, write_order

EVERY_FIELD = Training(
    method="dpo",
    beta=0.25,
    rpo_alpha=0.5,
    fine_tune_type="dora",
    rank=16,
    scale=12.5,
    dropout=0.05,
    layers=-1,
    keys=["self_attn.q_proj", "self_attn.v_proj"],
    learning_rate=2.5e-5,
    lr_schedule="linear",
    warmup=3,
    epochs=2,
    batch_size=2,
    max_seq_length=256,
    grad_checkpoint=True,
    val_fraction=0.2,
    val_every=5,
    checkpoint_every=7,
    patience=2,
    seed=2**64 - 1,
)
"""Every `[training]` field away from its default (DPO, so rpo_alpha may be set)."""


def new_run(training: Training = EVERY_FIELD) -> TrainOrder:
    config = RunConfig(
        persona="toy",
        base_model="embedded",
        training=training,
        system_prompt="You are Toy, a cheerful robot.",
        iters=9,
        persona_folder="/personas/toy",
        train_file="/personas/toy/preference.jsonl",
        init_from="toy@run-1:40",
        init_sha256="ab" * 32,
    )
    return TrainOrder(job=NewRun(config=config, label="grumpy"), adapters="/registry")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(argv)


def test_every_training_field_differs_from_its_default() -> None:
    # Otherwise the round trip below could pass with a field that is dropped on the way.
    defaults = Training()
    for name in Training.__struct_fields__:
        assert getattr(EVERY_FIELD, name) != getattr(defaults, name), name


@pytest.mark.parametrize(
    "order",
    [
        new_run(),
        new_run(msgspec.structs.replace(EVERY_FIELD, method="sft", rpo_alpha=0.0, keys=None)),
        TrainOrder(job=ResumeRun(persona="toy", run="run-3-grumpy")),
        TrainOrder(job=GuardRun(persona="/personas/wren", base_model="embedded", seed=7)),
    ],
    ids=["dpo-every-field", "sft", "resume", "guard"],
)
def test_an_order_written_by_a_job_reads_back_equal_in_the_trainer(
    order: TrainOrder, tmp_path: Path
) -> None:
    job = tmp_path / "ftjob-1"
    job.mkdir()
    path = write_order(job, order)
    assert read_order(str(path)) == order
    assert decode_order(encode_order(order)) == order
    assert list(job.iterdir()) == [path]  # written in place, no temporary left behind


def test_the_job_starts_the_trainer_on_the_file_without_the_working_folder_on_its_path() -> None:
    argv = train_command(Path("/jobs/ftjob-1/trainer.json"))
    assert argv == studio_command("train", "--config", "/jobs/ftjob-1/trainer.json", "--json")
    assert argv[1:4] == ["-P", "-m", "studio"]


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


def write(tmp_path: Path, document: object) -> str:
    path = tmp_path / "trainer.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def document(**training: object) -> dict[str, object]:
    built = msgspec.to_builtins(new_run())
    built["job"]["config"]["training"].update(training)  # type: ignore[index]
    return built  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"rank": "8"}, "Expected `int`, got `str` - at `$.job.config.training.rank`"),
        ({"rank": 0}, "training.rank must be >= 1"),
        ({"layers": -2}, "training.layers must be >= 1, or -1 for all"),
        ({"rpo_alpha": -1.0}, "training.rpo_alpha must be >= 0"),
        ({"lr_schedule": "wavy"}, "training.lr_schedule 'wavy' is not constant"),
        ({"learning_rat": 0.1}, "unknown field `learning_rat` - at `$.job.config.training`"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, object], named: str
) -> None:
    source = write(tmp_path, document(**change))
    with pytest.raises(ConfigError) as refused:
        read_order(source)
    assert f"the trainer config {source}" in str(refused.value)
    assert named in str(refused.value)


def test_a_config_file_that_is_not_an_order_is_refused_by_name(tmp_path: Path) -> None:
    whole = document()
    whole["job"]["config"]["iter"] = 3  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"unknown field `iter` - at `\$.job.config`"):
        read_order(write(tmp_path, whole))
    whole = document()
    whole["job"]["kind"] = "retrain"  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"Invalid value 'retrain' - at `\$.job.kind`"):
        read_order(write(tmp_path, whole))
    with pytest.raises(ConfigError, match="is not valid JSON"):
        read_order(write(tmp_path, '{"job": '))
    with pytest.raises(ConfigError, match="cannot read the trainer config"):
        read_order(str(tmp_path / "missing.json"))
    dpo = document()
    dpo["job"]["config"]["init_from"] = None  # type: ignore[index]
    with pytest.raises(ConfigError, match="init_from must name a checkpoint for DPO"):
        read_order(write(tmp_path, dpo))


def test_the_trainer_process_reports_a_bad_config_as_its_error_event(tmp_path: Path) -> None:
    source = write(tmp_path, document(batch_size=0))
    done = subprocess.run(
        studio_command("train", "--config", source, "--json"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    (line,) = done.stdout.splitlines()
    event = json.loads(line)
    assert event["event"] == "error"
    assert "training.batch_size must be >= 1" in event["message"]
    assert "Traceback" not in done.stderr


def test_config_stands_alone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = write(tmp_path, document())
    for argv, named in (
        (["toy", "--config", source, "--rank", "4", "--json"], "drop PERSONA, --rank"),
        (["--config", source, "--resume", "run-1", "--json"], "drop --resume"),
        (["--json"], "name a persona"),
    ):
        assert cli.run(parse(argv)) == 2
        event = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert event["event"] == "error"
        assert named in event["message"]


def test_an_order_on_stdin_reads_like_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    order = new_run()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(encode_order(order))))
    assert read_order("-") == order
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'{"job": {"kind": "x"}}')))
    with pytest.raises(ConfigError, match=r"the trainer config on stdin: .*`\$.job.kind`"):
        read_order("-")


def test_a_start_checkpoint_fixes_the_shape_the_flags_and_a_written_order_must_agree_with(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import threading

    from adapter_files import publish_random

    from adapters.training.session import start_session

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
