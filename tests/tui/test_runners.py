"""The TUI's child processes: training events, eval results, data checks, the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tui.api import ApiClient, ApiError
from tui.commands import run_command
from tui.data_report import parse_problems, read_record
from tui.eval_runner import metric_rows, parse_progress, run_eval
from tui.server_process import ServerProcess, is_local, serve_argv, wait_until_ready
from tui.settings import TuiSettings, load_settings
from tui.training import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    StartEvent,
    StepEvent,
    TrainingRun,
    TrainOverrides,
    parse_event,
    train_argv,
)

FAKE = [sys.executable, str(Path(__file__).with_name("fake_persona.py"))]


def test_parse_event_reads_known_events_and_skips_the_rest() -> None:
    step = parse_event(
        b'{"event":"step","step":3,"epoch":0.5,"train_loss":2.5,"lr":1e-4,'
        b'"tokens_per_sec":40,"it_per_sec":1,"eta_sec":12,"peak_memory_gb":1}\n'
    )
    assert isinstance(step, StepEvent)
    assert (step.step, step.train_loss, step.eta_sec) == (3, 2.5, 12)
    assert isinstance(
        parse_event('{"event":"checkpoint","step":4,"path":"p","version":"r:4"}'), CheckpointEvent
    )
    assert parse_event("OpenBLAS in use") is None
    assert parse_event('{"event":"future-kind","x":1}') is None
    assert parse_event('{"event":"step"}') is None  # a known event missing its fields


def test_train_argv_passes_only_given_overrides_and_resume() -> None:
    overrides = TrainOverrides(epochs=1, learning_rate=0.0002)
    argv = train_argv(["persona"], "juni", overrides, resume="run-2", model="/models/tiny")
    assert argv == [
        "persona",
        "train",
        "juni",
        "--json",
        "--resume",
        "run-2",
        "--model",
        "/models/tiny",
        "--epochs",
        "1",
        "--learning-rate",
        "0.0002",
    ]


async def test_training_run_yields_events_from_a_real_child_process() -> None:
    run = TrainingRun([*FAKE, "train", "juni", "--json"])
    events = [e async for e in run.events()]
    assert isinstance(events[0], StartEvent)
    assert events[0].total_steps == 4
    assert [e.version for e in events if isinstance(e, CheckpointEvent)] == ["run-1:2", "run-1:4"]
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].reason == "finished"
    assert not run.running


async def test_a_crashing_trainer_ends_with_an_error_event_naming_the_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_TRAIN_FAIL", "1")
    events = [e async for e in TrainingRun([*FAKE, "train", "juni", "--json"]).events()]
    assert len(events) == 1
    assert isinstance(events[0], ErrorEvent)
    assert "exited with code 1" in events[0].message
    assert "dataset is empty" in events[0].message


async def test_a_missing_trainer_program_is_an_error_event() -> None:
    events = [e async for e in TrainingRun(["/nonexistent/persona", "train"]).events()]
    assert isinstance(events[0], ErrorEvent)
    assert "cannot start the trainer" in events[0].message


async def test_stop_asks_the_trainer_to_finish_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_STEPS", "200")
    run = TrainingRun([*FAKE, "train", "juni", "--json"])
    events = []
    async for event in run.events():
        events.append(event)
        if isinstance(event, StepEvent) and event.step == 3:
            run.stop()
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].reason == "stopped"
    assert events[-1].step < 200


async def test_run_command_raises_api_error_with_stderr_tail() -> None:
    with pytest.raises(ApiError, match="invalid choice: 'nope'") as caught:
        await run_command([*FAKE, "nope"], title="Nope failed")
    assert caught.value.title == "Nope failed"
    result = await run_command([*FAKE, "nope"], ok_codes=(2,))
    assert result.returncode == 2


async def test_run_eval_decodes_result_and_reports_progress(tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    report = await run_eval(
        FAKE,
        "juni",
        ["juni", "gemma-3-270m"],
        "http://127.0.0.1:8000",
        lambda d, t: progress.append((d, t)),
    )
    assert [m.model for m in report.models] == ["juni", "gemma-3-270m"]
    assert progress[-1] == (2, 2)
    columns, rows = metric_rows(report)
    assert columns == ["metric", "juni", "gemma-3-270m"]
    assert rows[0] == ["score (0-1)", "0.50", "0.60"]
    assert ["pass: idk", "1.00", "1.00"] in rows
    assert parse_progress("\r  7/32 replies") == (7, 32)


def test_parse_problems_reads_file_line_output() -> None:
    out = (
        "/p/juni/train.jsonl:12: last message must be from the assistant\n"
        "/p/juni/train.jsonl:40: warning: near-duplicate prompt of line 12\n"
        "/p/juni/persona.toml: unknown key 'sampling.temprature'\n"
        "not a problem line\n"
    )
    problems = parse_problems(out)
    assert [(p.location, p.severity) for p in problems] == [
        ("/p/juni/train.jsonl:12", "error"),
        ("/p/juni/train.jsonl:40", "warning"),
        ("/p/juni/persona.toml", "error"),
    ]
    assert problems[1].message == "near-duplicate prompt of line 12"


def test_read_record_shows_the_conversation_at_a_line(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]},
        {
            "messages": [
                {"role": "user", "content": "why?"},
                {"role": "assistant", "content": "Because!"},
            ],
            "tags": ["clarify"],
        },
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    assert read_record(str(data), 2) == "user: why?\n\nassistant: Because!\n\ntags: clarify"
    assert read_record(str(data), 3) == "{broken"
    assert "fewer than 9 lines" in read_record(str(data), 9)
    assert "cannot read" in read_record(str(tmp_path / "missing.jsonl"), 1)


def test_serve_argv_and_locality() -> None:
    settings = TuiSettings(
        url="http://127.0.0.1:8123", model="/models/tiny", persona_command=["persona"]
    )
    assert serve_argv(settings) == [
        "persona",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--model",
        "/models/tiny",
    ]
    assert is_local("http://localhost:8000")
    assert not is_local("http://gpu-box.lan:8000")


async def test_a_server_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    process = ServerProcess(
        [sys.executable, "-c", "import sys; print('error: no such model folder'); sys.exit(2)"],
        tmp_path / "server.log",
    )
    process.start()
    states = []
    with pytest.raises(ApiError, match="no such model folder") as caught:
        await wait_until_ready(ApiClient("http://127.0.0.1:9"), process, states.append, 0.05)
    assert caught.value.title == "The server did not start"
    assert states[0].state == "down"


def test_server_process_stop_ends_the_child(tmp_path: Path) -> None:
    process = ServerProcess(
        [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "server.log"
    )
    process.start()
    assert not process.exited
    process.stop(timeout=5)
    assert process.exited


def test_settings_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "tui.toml"
    path.write_text('url = "http://127.0.0.1:9000"\nmodel = "/m"\n')
    settings = load_settings(path, {"PERSONA_URL": "http://127.0.0.1:9100"})
    assert (settings.url, settings.model) == ("http://127.0.0.1:9100", "/m")
    assert settings.command("serve")[-1] == "serve"
    path.write_text('urll = "x"\n')
    with pytest.raises(Exception, match="urll"):
        load_settings(path, {})


def test_bare_persona_runs_the_tui() -> None:
    code = "import studio.cli as c; print(c.DEFAULT_COMMAND)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "tui"
