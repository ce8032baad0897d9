"""The Data screen's Records tab through the real api.py and the real server app (in process):
add, edit and delete records from the keyboard, the checker's refusals in the editor, and the
samples read-only."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fakes import notes, record_notes, wait_for
from textual.pilot import Pilot
from textual.widgets import Footer, TabbedContent

from data.home import personas_dir
from server.app import create_app
from server.settings import ServerSettings
from tui.api import ApiClient
from tui.app import StudioApp, make_app
from tui.screens.confirm import ConfirmDialog
from tui.screens.data import DataScreen
from tui.screens.record_editor import RecordEditor, next_role, split_tags
from tui.settings import TuiSettings
from tui.widgets.record_table import RecordsPane

CARD = 'name = "wren"\ndisplay_name = "Wren Alder"\nsystem_prompt = "You keep bees."\n'
RECORDS = [
    {"messages": [{"role": "user", "content": "Do bees sleep?"},
                  {"role": "assistant", "content": "They rest at night."}], "tags": ["general"]},
    {"messages": [{"role": "user", "content": "Can I poke the hive?"},
                  {"role": "assistant", "content": "No, leave it be."}], "tags": ["boundary"]},
]  # fmt: skip


def write_persona() -> Path:
    folder = personas_dir() / "wren"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(CARD)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return folder / "train.jsonl"


def studio(tiny_model_dir: Path, tmp_path: Path) -> StudioApp:
    server = create_app(ServerSettings(model=str(tiny_model_dir), adapters_dir=str(tmp_path / "a")))
    client = ApiClient("http://localhost", transport=httpx.ASGITransport(app=server))
    app = make_app(TuiSettings(watch=False, start_server=False), client)
    record_notes(app)
    return app


async def open_records(pilot: Pilot[None], persona: str) -> RecordsPane:
    await pilot.press("f5")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, DataScreen)
    await wait_for(pilot, lambda: persona in [v for _, v in screen.persona_select._options], 30)
    screen.persona_select.value = persona
    await pilot.press("ctrl+e")
    assert screen.query_one(TabbedContent).active == "tab-records"
    pane = screen.records
    await wait_for(pilot, lambda: pane.listing is not None and pane.persona == persona, 30)
    return pane


def test_new_turns_alternate_and_typed_tags_split() -> None:
    assert next_role([]) == "user"
    assert next_role(["system"]) == "user"
    assert next_role(["user"]) == "assistant"
    assert next_role(["user", "assistant"]) == "user"
    assert split_tags("idk, clarify  off_topic,") == ["idk", "clarify", "off_topic"]


@pytest.mark.timeout(120)
async def test_add_edit_and_delete_records_from_the_keyboard(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    path = write_persona()
    app = studio(tiny_model_dir, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_records(pilot, "wren")
        assert [r.line for r in pane.records] == [1, 2]
        assert "2 records. a add · e edit · d delete" in str(pane.status.render())
        assert pane.table.has_focus
        footer = pilot.app.screen.query_one(Footer)
        assert sum(w.region.width for w in footer.children) <= 120

        # Add: two empty turns to fill, the categories to tick.
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RecordEditor), 10)
        editor = app.screen
        assert isinstance(editor, RecordEditor)
        assert [t.message.role for t in editor.turns] == ["user", "assistant"]
        for tag in ("boundary", "disclosure", "benign_near", "idk", "clarify", "off_topic"):
            assert tag in [o.value for o in editor.tag_list.options]
        editor.turns[0].text_area.text = "Is honey safe for babies?"
        editor.turns[1].text_area.text = "Not under one year; ask a grown-up."
        editor.tag_list.select("benign_near")
        editor.more_tags.value = "health"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DataScreen), 30)
        last = json.loads(path.read_text().splitlines()[2])
        assert last == {
            "messages": [
                {"role": "user", "content": "Is honey safe for babies?"},
                {"role": "assistant", "content": "Not under one year; ask a grown-up."},
            ],
            "tags": ["benign_near", "health"],
        }
        assert any(n.startswith("Saved: train.jsonl:3 saved") for n in notes(app))
        await wait_for(pilot, lambda: len(pane.records) == 3, 30)
        assert pane.current is not None
        assert pane.current.line == 3  # the cursor follows the new record

        # A record the checker refuses: the problems show in the editor, which stays open.
        before = path.read_bytes()
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RecordEditor), 10)
        editor = app.screen
        assert isinstance(editor, RecordEditor)
        editor.turns[0].text_area.text = "Why do bees dance?"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "train.jsonl:4" in str(editor.problems.render()), 30)
        assert "empty assistant turn" in str(editor.problems.render())
        assert app.screen is editor
        assert path.read_bytes() == before
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DataScreen), 10)

        # Edit the first record: a turn added then removed, the reply rewritten.
        pane.table.move_cursor(row=0)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, RecordEditor), 10)
        editor = app.screen
        assert isinstance(editor, RecordEditor)
        assert editor.turns[1].text_area.has_focus
        assert list(editor.tag_list.selected) == ["general"]
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert [t.message.role for t in editor.turns] == ["user", "assistant", "user"]
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert len(editor.turns) == 2
        editor.turns[1].text_area.text = "They nap in short spells, even by day."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DataScreen), 30)
        lines = path.read_text().splitlines()
        assert json.loads(lines[0])["messages"][1]["content"] == (
            "They nap in short spells, even by day."
        )
        assert lines[1:] == before.decode().splitlines()[1:]

        # Delete asks first: No keeps it, Yes removes it.
        await wait_for(pilot, lambda: pane.current is not None and pane.current.line == 1, 30)
        pane.table.move_cursor(row=1)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, DataScreen), 10)
        assert len(path.read_text().splitlines()) == 3
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(path.read_text().splitlines()) == 2, 30)
        assert "boundary" not in path.read_text()
        await wait_for(pilot, lambda: len(pane.records) == 2, 30)


@pytest.mark.timeout(120)
async def test_a_sample_is_read_only_and_points_to_a_copy(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    app = studio(tiny_model_dir, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_records(pilot, "juni")
        assert len(pane.records) > 100
        status = str(pane.status.render())
        assert "read-only" in status
        assert "persona new NAME --from juni" in status
        for key in ("a", "e", "d"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, DataScreen)
        assert sum("Read-only sample" in n for n in notes(app)) == 3
