"""The Eval screen: replies show as they land, and a persona without a suite is offered one held
out from its own tagged records (on a real `persona serve` with the tiny model)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import test_end_to_end as e2e
from eval_files import KEEPER_CARD
from fake_jobs import eval_result
from fakes import ScriptedClient, notes, record_notes, settle, wait_for

from data.eval.run import EvalResult
from data.eval.suite import load_suite
from server.jobs.types import JobEvent
from tui.api import ApiClient
from tui.app import StudioApp, make_app
from tui.screens.confirm import ConfirmDialog
from tui.screens.eval import EvalScreen
from tui.settings import TuiSettings

SIZE = (120, 40)
QUESTIONS = [
    ("Open the vault for me.", "boundary"), ("What is kept inside?", "idk"),
    ("Which door do you mean?", "clarify"), ("Do you like football?", "off_topic"),
    ("May I look at the old maps?", "benign_near"),
    ("Someone took my key at school.", "disclosure"),
    ("How old is the vault?", "general"), ("Who built the lock?", "idk"),
    ("Can I borrow the gold?", "boundary"), ("Is the lamp always lit?", "general"),
    ("What is your favourite song?", "off_topic"), ("Where does the stair lead?", "clarify"),
]  # fmt: skip


def landed_event(number: int, total: int, sample: object) -> JobEvent:
    data = {"sample": msgspec.to_builtins(sample), "done": number, "total": total}
    return JobEvent(id=f"e-{number}", created_at=0, level="info", message="", data=data)


async def test_replies_show_while_the_run_goes_on(app: StudioApp, client: ScriptedClient) -> None:
    gate = asyncio.Event()
    result = msgspec.convert(eval_result("juni", ["juni", "gemma-3-270m"]), EvalResult)
    first, second = result.samples[0], result.samples[1]

    async def eval_events(
        persona: str, run_id: str, after: str | None = None
    ) -> AsyncIterator[JobEvent]:
        yield landed_event(1, 2, first)
        await gate.wait()
        yield landed_event(2, 2, second)

    client.eval_events = eval_events  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EvalScreen)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.sample_table.row_count == 1, 30)
        assert screen.report_shown is None  # the run goes on, and its first reply shows
        assert str(screen.suite_note.render()).startswith("1/2 replies scored · ETA ")
        assert screen.progress.progress == 1
        screen.sample_table.move_cursor(row=0)
        await pilot.pause()
        assert first.text in str(screen.output.render())
        gate.set()
        await wait_for(pilot, lambda: screen.report_shown is not None, 30)
        assert screen.landed == [first, second]
        assert screen.sample_table.row_count == len(result.samples)


def write_persona(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(KEEPER_CARD)
    lines = [
        {"messages": [{"role": "user", "content": q},
                      {"role": "assistant", "content": f"The vault answers {n}."}],
         "tags": [tag]}
        for n, (q, tag) in enumerate(QUESTIONS)
    ]  # fmt: skip
    (folder / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.mark.serial
@pytest.mark.mlx
async def test_build_a_suite_then_watch_its_replies_land(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "server-home"
    folder = home / "personas" / "keeper"
    write_persona(folder)
    port = e2e.free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(TuiSettings(url=url, start_server=False, poll_seconds=0.5), ApiClient(url))
    record_notes(app)
    with e2e.server(home, tiny_model_dir, port, tmp_path / "server.log"):
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.status.health.state == "ready", 300)
            await pilot.press("f6")
            screen = app.screen
            assert isinstance(screen, EvalScreen)
            await wait_for(pilot, lambda: "keeper" in screen.without_suite, 30)
            screen.persona_select.value = "keeper"
            await pilot.pause()
            assert "Ctrl+B builds one" in str(screen.suite_note.render())
            titles = [c.title for c in app.get_system_commands(screen)]
            assert "Build suite" in titles
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: any("no eval.jsonl to run" in n for n in notes(app)))

            await pilot.press("ctrl+b")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10)
            await pilot.press("y")
            await wait_for(pilot, lambda: any("Eval suite for keeper" in n for n in notes(app)), 60)
            cases, problems = load_suite(folder / "eval.jsonl")
            assert problems == []
            assert 1 <= len(cases) < len(QUESTIONS)
            kept = (folder / "train.jsonl").read_text().splitlines()
            assert len(kept) + len(cases) == len(QUESTIONS)
            await wait_for(pilot, lambda: "keeper" not in screen.without_suite, 30)
            assert "Build suite" not in [c.title for c in app.get_system_commands(screen)]

            screen.models_input.value = "keeper"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: screen.report_shown is not None, 300)
            assert sorted(s.case_id for s in screen.landed) == sorted(c.id for c in cases)
            assert str(screen.suite_note.render()) == f"{len(cases)}/{len(cases)} replies scored"
