"""The TUI's pure logic: conversations, reply metering, training progress, adapter views."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from fakes import JUNI, RUN

from adapters.training.events import DatasetInfo
from data.card import load_card
from data.personas import sample_personas_dir
from server.jobs.methods import plan_training
from server.jobs.types import CreateJobRequest
from tui.adapter_view import checkpoint_lines, last_error, rollback_target, summary
from tui.api import ServerHealth
from tui.conversations import ConversationError, ConversationStore, Turn, new_conversation
from tui.meter import ReplyMeter, reply_caption
from tui.status import ServerStatus, describe_event, describe_health, describe_status
from tui.train_progress import (
    BestEvent,
    CheckpointEvent,
    DoneEvent,
    StartEvent,
    StepEvent,
    TrainProgress,
    ValEvent,
    format_duration,
)
from tui.widgets.train_form import card_values, job_body, start_options
from tui.wire import (
    AdapterEvent,
    LoadError,
    PersonaAdapters,
    ReplyPiece,
    SamplingOverrides,
    Training,
)


def test_conversation_round_trip_and_listing(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "conversations")
    first = new_conversation("juni", SamplingOverrides(temperature=0.4))
    first = msgspec.structs.replace(
        first,
        turns=(
            Turn("user", "Where do crabs sleep?"),
            Turn(
                "assistant",
                "In tide pools!",
                model="juni",
                adapter="run-1:40",
                tokens=5,
                tokens_per_sec=9.5,
                finish_reason="stop",
            ),
        ),
    )
    saved = store.save(first)
    second = store.save(new_conversation("gemma-3-270m"))
    loaded = store.load(saved.id)
    assert loaded == saved
    assert loaded.overrides.temperature == 0.4
    assert [m.role for m in loaded.messages()] == ["user", "assistant"]
    listed = store.list()
    assert [s.id for s in listed] == [second.id, saved.id]  # newest first
    assert listed[1].label == "Where do crabs sleep?"
    assert not list((tmp_path / "conversations").glob("*.tmp"))  # atomic: no leftovers


def test_conversation_store_refuses_paths_and_skips_broken_files(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    with pytest.raises(ConversationError, match="invalid conversation id"):
        store.load("../../etc/passwd")
    (tmp_path / "20260101-000000-abcdef.json").write_text("{not json")
    with pytest.raises(ConversationError, match=r"20260101-000000-abcdef\.json"):
        store.load("20260101-000000-abcdef")
    assert store.list() == []


def test_reply_meter_counts_tokens_and_speed() -> None:
    meter = ReplyMeter(started=0.0)
    meter.add(ReplyPiece("Hel", adapter="run-1:20"), 1.0)
    meter.add(ReplyPiece("lo"), 1.5)
    meter.add(ReplyPiece("!"), 2.0)
    assert meter.token_count == 3
    assert meter.tokens_per_sec() == pytest.approx(2.0)  # 2 tokens after the first in 1 s
    meter.add(ReplyPiece("", "stop", None, 4), 2.0)
    assert meter.token_count == 4
    assert meter.adapter == "run-1:20"
    assert reply_caption(4, 3.0, "run-1:20", "stop") == "4 tokens · 3.0 tok/s · adapter run-1:20"
    assert reply_caption(9, None, None, "length") == "9 tokens · no adapter · cut at max_tokens"


def start(run: str, total: int) -> StartEvent:
    dataset = DatasetInfo(20, 2, 900, 500, 90, 5, "0" * 64)
    return StartEvent(run=run, persona="juni", config={}, dataset=dataset, total_steps=total)


def step(n: int, loss: float, eta: float) -> StepEvent:
    return StepEvent(
        step=n,
        epoch=n / 100,
        train_loss=loss,
        lr=1e-4,
        tokens_per_sec=40.0,
        it_per_sec=1.0,
        eta_sec=eta,
        peak_memory_gb=1.0,
    )


def events() -> list:  # type: ignore[type-arg]
    return [
        start("run-2", 100),
        step(10, 3.0, 200.0),
        step(20, 2.6, 150.0),
        ValEvent(step=20, val_loss=2.7),
        CheckpointEvent(step=20, path="", version="run-2:20"),
        BestEvent(step=20, val_loss=2.7),
    ]


def test_train_progress_folds_events() -> None:
    progress = TrainProgress()
    for event in events():
        progress.apply(event)
    assert progress.train_points == [(10, 3.0), (20, 2.6)]
    assert progress.val_points == [(20, 2.7)]
    row = progress.checkpoints[0]
    assert (row.version, row.val_loss, row.best, row.live) == ("run-2:20", 2.7, True, False)
    text = progress.summary()
    assert "step 20/100" in text
    assert "val loss 2.700" in text
    assert "ETA 2m 30s" in text
    progress.apply(DoneEvent(step=100, reason="finished"))
    assert progress.state == "done"
    assert "done: finished" in progress.summary()


def test_a_hot_load_report_can_arrive_before_the_checkpoint_event() -> None:
    progress = TrainProgress()
    progress.apply(start("run-2", 10))
    assert progress.mark_live("run-2:5")
    assert not progress.mark_live("run-1:5")  # another run's checkpoint is not ours
    progress.apply(CheckpointEvent(step=5, path="", version="run-2:5"))
    assert progress.checkpoints[0].live


def test_format_duration() -> None:
    assert format_duration(None) == "-"
    assert format_duration(45) == "45s"
    assert format_duration(200) == "3m 20s"
    assert format_duration(3720) == "1h 02m"


def test_adapter_view_rows_rollback_and_error() -> None:
    entry = PersonaAdapters(
        persona="juni",
        mode="pinned",
        active="run-1:40",
        loaded=["run-1:40"],
        last_error=LoadError("run-1:60", "rank mismatch", 0.0),
        runs=[RUN],
    )
    columns, lines = checkpoint_lines(entry)
    assert columns == ["run", "step", "created", "val_loss", "train_loss", "score", "state"]
    assert lines[1].cells[3:] == (
        "2.120",
        "1.900",
        "0.710",
        "active (pinned), loaded, best, latest",
    )
    assert rollback_target(entry) == ("run-1", 20)
    first = PersonaAdapters("juni", "pinned", "run-1:20", [], None, [RUN])
    assert rollback_target(first) is None
    assert "pinned" in summary(entry)
    assert "Could not load run-1:60" in last_error(entry)
    assert "rank mismatch" in last_error(entry)


def test_status_line() -> None:
    status = ServerStatus(
        url="http://127.0.0.1:8000",
        health=ServerHealth("ready", "ok", "gemma-3-270m"),
        model="gemma-3-270m",
        adapters=(PersonaAdapters("juni", "follow", "run-1:40", [], None, []),),
        last_event=AdapterEvent("loaded", "juni", "run-1:40", "", 0.0),
    )
    line = describe_status(status)
    assert "model gemma-3-270m" in line
    assert "juni run-1:40" in line
    assert "last: juni run-1:40 loaded" in line
    assert describe_health(status)[1] == "-ready"
    down = ServerStatus(url="u", health=ServerHealth("down", "refused"))
    assert describe_health(down) == ("○ disconnected, retrying", "-down")
    assert "rank" in describe_event(AdapterEvent("failed", "juni", "run-1:9", "rank", 0.0))


def test_a_job_body_from_the_form_trains_exactly_the_edited_values() -> None:
    card = load_card(sample_personas_dir() / "juni")
    # The server sends the card's [training]; the TUI reads it into the form.
    defaults = card_values(msgspec.json.decode(msgspec.json.encode(card.training), type=Training))
    assert (defaults.epochs, defaults.max_seq_length) == (2, 384)  # the sample card's values
    edited = msgspec.structs.replace(defaults, epochs=1, rank=16, learning_rate=3e-4)
    body = job_body(edited, defaults)
    assert set(body) == {"rank", "method"}
    request = msgspec.convert({"model": "juni", **body}, CreateJobRequest)
    _plan, training = plan_training(request, card.training)
    assert (training.epochs, training.rank) == (1, 16)
    assert training.learning_rate == pytest.approx(3e-4)
    assert training.batch_size == card.training.batch_size
    assert job_body(defaults, defaults) == {}
    assert JUNI.title == "Juni Pebblewick"


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_a_preference_job_body_names_its_method_and_beta_as_the_server_plans_it(
    method: str,
) -> None:
    card = load_card(sample_personas_dir() / "juni")
    defaults = card_values(msgspec.json.decode(msgspec.json.encode(card.training), type=Training))
    assert (defaults.method, defaults.beta) == ("sft", 0.1)
    edited = msgspec.structs.replace(defaults, method=method, beta=0.3, epochs=1)
    body = job_body(edited, defaults)
    hyper = {"n_epochs": 1, "beta": 0.3}
    assert body == {"method": {"type": method, method: {"hyperparameters": hyper}}}
    plan, training = plan_training(msgspec.convert({"model": "juni", **body}, CreateJobRequest),
                              card.training)  # fmt: skip
    assert (training.method, training.beta, training.epochs) == (method, 0.3, 1)
    assert plan.method is not None
    assert plan.method.type == method
    # The method alone is named too: a job without one is supervised.
    same = msgspec.structs.replace(defaults, method=method)
    assert job_body(same, defaults) == {"method": {"type": method}}
    # A card that trains DPO, switched to SFT in the form, sends no method: OpenAI's default.
    dpo_card = msgspec.structs.replace(defaults, method="dpo")
    assert job_body(msgspec.structs.replace(dpo_card, method="sft"), dpo_card) == {}


def test_start_options_list_each_runs_best_then_its_steps_newest_first() -> None:
    from server.hotswap.types import PersonaAdapters, RunInfo

    second = RunInfo("run-2", "running", None, 10, [msgspec.structs.replace(
        RUN.checkpoints[0], step=10, version="run-2:10")])  # fmt: skip
    adapters = [PersonaAdapters("juni", "follow", None, [], None, [RUN, second])]
    assert start_options("juni", adapters) == [
        ("run-2:10", "juni@run-2:10"),
        ("run-1:best (step 40)", "juni@run-1:best"),
        ("run-1:40", "juni@run-1:40"),
        ("run-1:20", "juni@run-1:20"),
    ]
    assert start_options("vell", adapters) == []


def test_tui_app_imports_neither_mlx_nor_litestar() -> None:
    code = (
        "import sys, tui.app, tui.cli\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'mlx', 'mlx_lm', 'litestar', 'transformers', 'uvicorn'})\n"
        "server = sorted(m for m in sys.modules if m.startswith('server.') "
        "and m not in ('server.wire', 'server.wire.openai', 'server.wire.foreign', "
        "'server.wire.drafts', 'server.wire.personas', 'server.wire.records', "
        "'server.envelope', "
        "'server.hotswap', 'server.hotswap.types', "
        "'server.jobs', 'server.jobs.types'))\n"
        "print(heavy, server)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"
