"""One still picture per screen, at a fixed size, from scripted data (no clocks, no watchers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import ScriptedClient, settle, wait_for
from textual.pilot import Pilot
from textual.widgets import Input

from adapters.training.events import DatasetInfo
from data.stats import Band, Lengths, Share
from tui.app import StudioApp, make_app
from tui.conversations import Conversation, Turn
from tui.screens.chat import ChatScreen
from tui.screens.data import DataScreen
from tui.screens.eval import EvalScreen
from tui.screens.train import TrainScreen
from tui.settings import TuiSettings
from tui.train_progress import (
    BestEvent,
    CheckpointEvent,
    StartEvent,
    StepEvent,
    ValEvent,
)
from tui.wire import DataCheck, DataRow, DatasetStats, Problem, SamplingOverrides

SIZE = (120, 36)
Snap = Callable[..., bool]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times on screen are local times: pin the zone so pictures match everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture
def still_app() -> StudioApp:
    client = ScriptedClient()
    client.one_piece = True
    settings = TuiSettings(watch=False, start_server=False)
    return make_app(settings, client)


async def steady(pilot: Pilot[None]) -> None:
    """Let work finish, stop cursors blinking, and clear notifications."""
    await settle(pilot)
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    pilot.app.clear_notifications()
    await pilot.pause()


def test_chat_snapshot(snap_compare: Snap, still_app: StudioApp) -> None:
    conversation = Conversation(
        id="20260101-120000-abcdef",
        model="juni",
        created=0.0,
        updated=0.0,
        overrides=SamplingOverrides(temperature=0.6),
        turns=(
            Turn("user", "Where do crabs sleep?"),
            Turn(
                "assistant",
                "Splish-splash! Crabs tuck into **rock cracks** at night.",
                model="juni",
                adapter="run-1:40",
                tokens=14,
                tokens_per_sec=9.5,
                finish_reason="stop",
            ),
            Turn("user", "Do they snore?"),
            Turn(
                "assistant",
                "Hmm, I do not know! Shall we listen at the tide pool?",
                model="juni",
                adapter="run-1:40",
                tokens=15,
                tokens_per_sec=9.8,
                finish_reason="stop",
            ),
        ),
    )

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, ChatScreen)
        await screen.show_conversation(conversation)
        await steady(pilot)

    assert snap_compare(still_app, terminal_size=SIZE, run_before=run_before)


def test_train_snapshot(snap_compare: Snap, still_app: StudioApp) -> None:
    dataset = DatasetInfo(280, 20, 40000, 21000, 2800, 70, "0" * 64)
    events = [StartEvent(run="run-2", persona="juni", config={}, dataset=dataset, total_steps=140)]
    for step in range(5, 65, 5):
        events.append(
            StepEvent(
                step=step,
                epoch=step / 70,
                train_loss=3.2 - step * 0.02,
                lr=1e-4,
                tokens_per_sec=41.0,
                it_per_sec=0.3,
                eta_sec=(140 - step) * 3.0,
                peak_memory_gb=2.1,
            )
        )
        if step % 25 == 0:
            val = 3.25 - step * 0.018
            events += [
                ValEvent(step=step, val_loss=val),
                CheckpointEvent(step=step, path="", version=f"run-2:{step}"),
                BestEvent(step=step, val_loss=val),
            ]

    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, TrainScreen)
        for event in events:
            screen.monitor.record(event)
        screen.monitor.mark_live("run-2:25")
        await steady(pilot)

    assert snap_compare(still_app, terminal_size=SIZE, run_before=run_before)


def test_adapters_snapshot(snap_compare: Snap, still_app: StudioApp) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("f3")
        await steady(pilot)

    assert snap_compare(still_app, terminal_size=SIZE, run_before=run_before)


def test_compare_snapshot(snap_compare: Snap, still_app: StudioApp) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("f4")
        await settle(pilot)
        await pilot.press(*"What is a tide?", "enter")
        await steady(pilot)

    assert snap_compare(still_app, terminal_size=SIZE, run_before=run_before)


def test_data_snapshot(snap_compare: Snap, still_app: StudioApp) -> None:
    lines = Path(__file__).with_name("data").joinpath("broken.jsonl").read_text().splitlines()
    check = DataCheck(
        files=["train.jsonl"],
        rows=[DataRow("train.jsonl", n, text) for n, text in enumerate(lines, 1)],
        problems=[
            Problem("train.jsonl", 12, "error", "the last message must be from the assistant"),
            Problem("train.jsonl", 3, "warning", "near-duplicate prompt of line 2"),
        ],
        notes=[],
    )
    stats = DatasetStats(
        records=120,
        single_turn=100,
        multi_turn=20,
        replies=140,
        words=Lengths(
            unit="words",
            count=140,
            min=8,
            max=95,
            mean=41.0,
            median=38.0,
            stdev=8.6,
            cv=0.21,
            histogram=(
                Band(0, 20, 18),
                Band(20, 40, 60),
                Band(40, 60, 44),
                Band(60, 80, 14),
                Band(80, 100, 4),
            ),
        ),
        tokens=None,
        tags=(),
        failure_modes=(
            Share("idk", 12, 0.1),
            Share("clarify", 9, 0.075),
            Share("off_topic", 6, 0.05),
            Share("boundary", 0, 0.0),
        ),
        failure_share=0.225,
        openers=(),
        phrases=(Share("tide pool", 30, 0.21),),
        catchphrases=(Share("Splish-splash", 25, 0.18),),
        duplicate_prompts=0,
        near_duplicate_prompts=0,
        duplicate_replies=0,
        warnings=(
            "reply lengths are nearly uniform (CV 0.21 < 0.25)",
            "no records tagged boundary",
        ),
    )

    client = still_app.client
    assert isinstance(client, ScriptedClient)
    client.check_view, client.stats_view = check, stats

    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("f5")
        screen = pilot.app.screen
        assert isinstance(screen, DataScreen)
        await wait_for(pilot, lambda: screen.stats is not None and bool(screen.problems))
        screen.problem_table.focus()
        await steady(pilot)

    assert snap_compare(still_app, terminal_size=SIZE, run_before=run_before)


def test_eval_snapshot(snap_compare: Snap, still_app: StudioApp) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("f6")
        screen = pilot.app.screen
        assert isinstance(screen, EvalScreen)
        await settle(pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.report_shown is not None)
        screen.sample_table.focus()
        await steady(pilot)

    assert snap_compare(still_app, terminal_size=SIZE, run_before=run_before)
