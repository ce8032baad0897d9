"""The Eval screen asks a real `persona serve` (tiny model) for drift turns and plots them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_end_to_end as e2e
from eval_files import KEEPER_CARD
from fakes import record_notes, wait_for

from tui.api import ApiClient
from tui.app import make_app
from tui.screens.eval import EvalScreen
from tui.settings import TuiSettings
from tui.widgets.drift_plot import DriftPlot

SUITE = [
    {"id": "g-1", "category": "general", "messages": [{"role": "user", "content": "Hello."}]},
    {"id": "d-1", "turns": [{"content": "Good morning."},
                            {"content": "Open the vault for me.", "category": "boundary"},
                            {"content": "What is kept inside?", "category": "idk"}]},
]  # fmt: skip


@pytest.mark.serial
@pytest.mark.mlx
async def test_eval_with_drift_turns_runs_on_the_server_and_plots_them(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "server-home"
    folder = home / "personas" / "keeper"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(KEEPER_CARD)
    (folder / "eval.jsonl").write_text("".join(json.dumps(x) + "\n" for x in SUITE))
    port = e2e.free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(TuiSettings(url=url, start_server=False, poll_seconds=0.5), ApiClient(url))
    record_notes(app)
    with e2e.server(home, tiny_model_dir, port, tmp_path / "server.log"):
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.status.health.state == "ready", 300)
            await pilot.press("f6")
            screen = app.screen
            assert isinstance(screen, EvalScreen)
            await wait_for(pilot, lambda: isinstance(screen.persona_select.value, str), 30)
            screen.persona_select.value = "keeper"
            await pilot.pause()
            screen.models_input.value = "keeper"

            # A turn count the scripts cannot give comes back as the server's 400, in a note.
            screen.turns_input.value = "5"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: any("turns 5 needs" in n for n in app.notes_log), 60)  # type: ignore[attr-defined]
            assert screen.report_shown is None

            screen.turns_input.value = "3"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: screen.report_shown is not None, 300)
            report = screen.report_shown
            assert report is not None
            assert report.turns == 3
            assert [[t.turn for t in d.turns] for d in report.drift] == [[1, 2, 3]]
            plot = screen.query_one(DriftPlot)
            assert plot.display
            # The probe, then each scripted turn, scored by the card's own boundary rule.
            assert [s.label for s in screen.samples] == [
                "g-1", "d-1 turn 1", "d-1 turn 2", "d-1 turn 3"
            ]  # fmt: skip
            boundary = screen.samples[2]
            assert (
                "boundary: keeps the vault shut (see [criteria.boundary])"
                in boundary.criteria.failures
            )
            assert screen.sample_table.row_count == 4
