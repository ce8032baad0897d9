"""The Train screen before the trainer speaks: the job shows at once, and the run's plan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from fakes import ScriptedClient, settle, wait_for

from data.stats import dataset_stats
from server.jobs.types import JobEvent
from tui.app import StudioApp
from tui.screens.train import TrainScreen
from tui.train_progress import TrainProgress
from tui.wire import DatasetStats

SIZE = (120, 40)


def test_a_created_job_is_shown_as_starting() -> None:
    progress = TrainProgress()
    assert progress.summary().startswith("Not training")
    progress.starting("parrot", "ftjob-3", "queued")
    assert progress.summary() == "parrot: job ftjob-3 queued; loading the model and the data…"


async def test_the_train_screen_shows_the_job_before_its_first_event(
    app: StudioApp, client: ScriptedClient
) -> None:
    started = asyncio.Event()

    async def silent(job_id: str, after: str | None = None) -> AsyncIterator[JobEvent]:
        started.set()
        await asyncio.Event().wait()  # the trainer is still loading
        yield  # type: ignore[misc]

    client.job_events = silent  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await pilot.press("ctrl+s")
        await wait_for(pilot, started.is_set)
        await pilot.pause()
        assert "job ftjob-1" in str(screen.monitor.stats.render())
        assert "loading the model" in str(screen.monitor.stats.render())


async def test_the_train_screen_shows_the_plan_and_takes_iterations(
    app: StudioApp, client: ScriptedClient
) -> None:
    stats: DatasetStats = msgspec.structs.replace(dataset_stats([]), records=31)

    async def data_stats(persona: str) -> DatasetStats:
        return stats

    client.data_stats = data_stats  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await wait_for(pilot, lambda: "steps" in str(screen.plan_label.render()))
        # Juni's card: 2 epochs of 8 batches (its own valid.jsonl, so no split), values it sets.
        assert str(screen.plan_label.render()).startswith("16 steps ≈ ")
        assert "validation every 25 steps" in str(screen.plan_label.render())
        screen.form.query_one("#train-iters").value = "5"  # type: ignore[attr-defined]
        await pilot.pause()
        assert str(screen.plan_label.render()).startswith("5 steps ≈ ")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert client.job_requests[-1][1]["iters"] == 5
