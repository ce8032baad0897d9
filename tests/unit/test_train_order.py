"""The trainer's typed order: what the flags build, what a job writes, what the trainer reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import msgspec
import pytest
from train_files import EVERY_FIELD, parse

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
