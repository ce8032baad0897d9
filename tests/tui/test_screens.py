"""Train, Adapters, Compare, Data and Eval screens, and the connection status, via the pilot."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from fakes import (
    JUNI,
    ScriptedClient,
    notes,
    record_notes,
    settle,
    wait_for,
)
from litestar import Litestar
from textual.widgets import Input

from server.api.routes.evals import eval_routes
from server.catalog import Catalog
from server.errors import handle_exception
from server.metrics import ServerMetrics
from server.settings import ServerSettings
from server.state import ServerState
from tui.api import ServerHealth
from tui.app import StudioApp, make_app
from tui.data_report import location
from tui.screens.adapters import AdaptersScreen
from tui.screens.compare import CompareScreen
from tui.screens.data import DataScreen
from tui.screens.eval import EvalScreen
from tui.screens.train import TrainScreen
from tui.settings import TuiSettings
from tui.wire import AdapterEvent, PersonaInfo

SIZE = (120, 40)


async def test_train_creates_a_job_follows_its_events_and_marks_hot_loaded_checkpoints(
    app: StudioApp, client: ScriptedClient
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        assert screen.persona == "juni"
        epochs = screen.form.query_one("#train-epochs", Input)
        assert epochs.value == "2"  # prefilled from the card, as the server reports it
        epochs.value = "1"
        screen.form.query_one("#train-learning_rate", Input).value = "0.00005"
        screen.form.query_one("#train-rank", Input).value = "4"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.monitor.progress.state == "done")
        await settle(pilot)
        # Only what was changed; no upload: the persona's dataset is on the server.
        assert client.job_requests == [
            (
                "juni",
                {
                    "rank": 4,
                    "method": {
                        "type": "supervised",
                        "supervised": {
                            "hyperparameters": {"n_epochs": 1, "learning_rate_multiplier": 0.5}
                        },
                    },
                },
            )
        ]
        progress = screen.monitor.progress
        assert [row.version for row in progress.checkpoints] == ["run-1:2", "run-1:4"]
        assert progress.train_points[-1] == (4, pytest.approx(1.4))
        assert screen.monitor.table.row_count == 2
        app.adapter_event = AdapterEvent("loaded", "juni", "run-1:4", "", time.time())
        await pilot.pause()
        assert progress.checkpoints[1].live
        assert screen.monitor.table.get_row_at(1)[-1] == "hot-loaded ✓"
        assert any(n.startswith("Hot-loaded: juni@run-1:4 is live") for n in notes(app))
        assert screen.job is not None
        assert screen.job.status == "succeeded"

        await pilot.press("ctrl+e")
        await pilot.press("ctrl+r")
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: len(client.steered) == 3)
        assert [a for _, a in client.steered] == ["pause", "resume", "cancel"]


async def test_train_reports_a_failed_job_plainly(app: StudioApp, client: ScriptedClient) -> None:
    client.fail_training = "the dataset is empty"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.monitor.progress.state == "failed")
        await settle(pilot)
        assert any("Training failed" in n and "dataset is empty" in n for n in notes(app))


async def test_adapters_pin_roll_back_and_follow(app: StudioApp, client: ScriptedClient) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AdaptersScreen)
        assert screen.table.row_count == 2
        assert screen.error_label.display
        assert "adapter rank 4 does not match" in str(screen.error_label.render())
        await pilot.press("b")  # active is run-1:40, so roll back to run-1:20
        await settle(pilot)
        assert client.activations[-1] == ("juni", "run-1", 20)
        assert "pinned" in str(screen.summary_label.render())
        screen.table.focus()
        screen.table.move_cursor(row=1)
        await pilot.press("a")
        await settle(pilot)
        assert client.activations[-1] == ("juni", "run-1", 40)
        await pilot.press("f")
        await settle(pilot)
        assert client.activations[-1] == ("juni", "follow", None)
        assert "follows the newest" in str(screen.summary_label.render())


async def test_compare_streams_each_model_side_by_side(
    app: StudioApp, client: ScriptedClient
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [p.value for p in screen.pickers] == ["gemma-3-270m", "juni", "juni@run-1:20"]
        screen.prompt.value = "What is a tide?"
        await pilot.press("enter")
        await settle(pilot)
        assert sorted(r[0] for r in client.requests) == ["gemma-3-270m", "juni", "juni@run-1:20"]
        panes = screen.panes
        assert all(p.markdown.source == client.reply for p in panes)
        assert "no adapter" in str(panes[0].caption.render())
        assert "adapter run-1:40" in str(panes[1].caption.render())


async def test_data_shows_the_servers_check_and_stats_with_the_record(
    persona_home: Path, tmp_path: Path
) -> None:
    # The real data routes check a persona that exists only in the server's personas folder.
    folder = tmp_path / "server-personas" / "pip"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text('name = "pip"\nsystem_prompt = "You are Pip."\n')
    good = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello there, friend!"},
        ]
    }
    bad = {"messages": [{"role": "user", "content": "no reply here"}]}
    (folder / "train.jsonl").write_text(f"{json.dumps(good)}\n{json.dumps(bad)}\n")
    server = data_server(Catalog.discover([folder.parent]))
    client = ScriptedClient(transport=httpx.ASGITransport(app=server))
    client.personas = lambda: _personas(client)  # type: ignore[method-assign]
    app = make_app(TuiSettings(watch=False, start_server=False), client)
    record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        screen = app.screen
        assert isinstance(screen, DataScreen)
        await wait_for(pilot, lambda: screen.persona_select.value == "pip")
        await wait_for(pilot, lambda: bool(screen.problems) and screen.stats is not None)
        locations = [location(p) for p in screen.problems]
        assert "train.jsonl:2" in locations  # named relative to the persona on the server
        screen.problem_table.focus()
        screen.problem_table.move_cursor(row=locations.index("train.jsonl:2"))
        await pilot.pause()
        assert "user: no reply here" in str(screen.record.render())
        screen.problem_table.move_cursor(row=0)
        await pilot.pause()
        assert screen.stats is not None
        assert screen.stats.records == 2
        assert "records checked: 1 errors" in str(screen.summary.render())
    assert not (persona_home / "personas").exists()  # nothing was read or written locally


async def _personas(client: ScriptedClient) -> list[PersonaInfo]:
    return [msgspec.structs.replace(JUNI, id="pip", data_files=["train.jsonl"])]


def data_server(catalog: Catalog) -> Litestar:
    """The real data routes over a catalog, with no engine (token checks are skipped)."""
    state = ServerState.create(ServerSettings(), catalog, ServerMetrics(1, lambda: None))
    return Litestar(
        route_handlers=eval_routes(), state=state, exception_handlers={Exception: handle_exception}
    )


async def test_eval_runs_on_the_server_and_fills_the_tables(
    app: StudioApp, client: ScriptedClient
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EvalScreen)
        assert screen.models_input.value == "juni gemma-3-270m"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.report_shown is not None)
        assert client.eval_requests == [("juni", ["juni", "gemma-3-270m"])]
        assert screen.metrics.row_count > 5
        assert screen.sample_table.row_count == 2
        screen.sample_table.focus()
        screen.sample_table.move_cursor(row=1)
        await pilot.pause()
        assert "Reply from gemma-3-270m." in str(screen.output.render())


class FlakyClient(ScriptedClient):
    """Ready, then gone for a while, then back."""

    def __init__(self) -> None:
        super().__init__()
        self.answers = ["ready", "down", "down", "ready"]

    async def health(self) -> ServerHealth:
        state = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return ServerHealth(state, "", "gemma-3-270m")  # type: ignore[arg-type]


async def test_losing_the_server_is_shown_and_the_tui_reconnects() -> None:
    client = FlakyClient()
    settings = TuiSettings(watch=True, start_server=False, poll_seconds=0.05)
    app = make_app(settings, client)
    record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.connection >= 2:
                break
        assert app.connection == 2
        await pilot.pause()  # notifications are delivered as messages
        messages = notes(app)
        assert any(m.startswith("Disconnected") for m in messages), messages
        assert any(m.startswith("Reconnected") for m in messages), messages
        assert app.status.health.state == "ready"
        assert JUNI.id in {a.persona for a in app.status.adapters}
