"""The TUI's one child process (a local server it starts), settings, and result views."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from fake_jobs import eval_result

from tui.api import ApiClient, ApiError
from tui.data_report import check_summary, record_at
from tui.eval_view import metric_rows
from tui.server_process import ServerProcess, is_local, serve_argv, wait_until_ready
from tui.settings import TuiSettings, load_settings
from tui.wire import DataCheck, DataRow, EvalResult, Problem


def test_metric_rows_lay_out_a_servers_eval_result() -> None:
    report = msgspec.convert(eval_result("juni", ["juni", "gemma-3-270m"]), EvalResult)
    columns, rows = metric_rows(report)
    assert columns == ["metric", "juni", "gemma-3-270m"]
    assert rows[0][0].startswith("pass: ")  # no contrast pairs: rule pass rates lead
    assert ["pass: idk", "1.00", "1.00"] in rows
    assert rows[-1] == ["score (keyword aggregate)", "0.50", "0.60"]
    labels = [row[0] for row in rows]
    assert labels.index("completed (stop)") < labels.index("score (keyword aggregate)")


def test_a_check_report_shows_the_record_at_a_line() -> None:
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
    check = DataCheck(
        files=["train.jsonl"],
        rows=[DataRow("train.jsonl", n, json.dumps(r)) for n, r in enumerate(rows, 1)],
        problems=[Problem("train.jsonl", 3, "error", "not valid JSON")],
        notes=[],
    )
    second = record_at(check, "train.jsonl", 2)
    assert second == "user: why?\n\nassistant: Because!\n\ntags: clarify"
    assert "could not be read" in record_at(check, "train.jsonl", 3)
    assert record_at(check, "train.jsonl", 0) == "train.jsonl (the file as a whole)"
    assert check_summary(check) == "2 records checked: 1 errors, 0 warnings"


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
