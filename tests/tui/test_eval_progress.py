"""The Eval screen says how far an evaluation has got: `7/18 replies scored · ETA ...`."""

from __future__ import annotations

from fakes import ScriptedClient, settle, wait_for

from server.jobs.types import EvalProgress, EvalRun
from tui.app import StudioApp
from tui.eval_progress import EvalClock
from tui.screens.eval import EvalScreen

SIZE = (120, 40)


def test_clock_text() -> None:
    clock = EvalClock(100.0)
    assert clock.text(0, 0, 100.5).startswith("queued")
    assert clock.text(0, 18, 101.0) == "0/18 replies scored"
    assert clock.text(7, 18, 114.0) == "7/18 replies scored · ETA 22s"


async def test_the_eval_screen_shows_replies_scored_and_eta(
    app: StudioApp, client: ScriptedClient
) -> None:
    seen: list[str] = []
    polls = iter([EvalProgress(0, 18), EvalProgress(7, 18), EvalProgress(18, 18)])
    finished = ScriptedClient.eval_run

    async def eval_run(persona: str, run_id: str) -> EvalRun:
        screen = app.screen
        if isinstance(screen, EvalScreen):
            seen.append(str(screen.suite_note.render()))  # what the last poll showed
        progress = next(polls, None)
        if progress is None or progress.done == progress.total:
            return await finished(client, persona, run_id)
        models = client.eval_requests[-1][1]
        return EvalRun(
            id=run_id, persona=persona, models=models, created_at=0, status="running",
            progress=progress,
        )  # fmt: skip

    client.eval_run = eval_run  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EvalScreen)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.report_shown is not None)
        assert "0/18 replies scored" in seen
        assert any(s.startswith("7/18 replies scored · ETA ") for s in seen)
