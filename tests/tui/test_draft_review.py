"""The Data screen's Review tab through the real api.py and the real server app (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fakes import record_notes, wait_for
from textual.widgets import TabbedContent

from data.authoring.drafts.gaps import DraftTarget
from data.authoring.drafts.store import add_draft, new_draft, read_drafts
from data.home import personas_dir
from data.records import Message
from server.app import create_app
from server.settings import ServerSettings
from tui.api import ApiClient
from tui.app import make_app
from tui.screens.data import DataScreen
from tui.settings import TuiSettings
from tui.widgets.draft_review import DraftReviewPane, as_text, from_text

CARD = 'name = "wren"\ndisplay_name = "Wren Alder"\nsystem_prompt = "You keep bees."\n'


def write_persona() -> Path:
    folder = personas_dir() / "wren"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(CARD)
    record = {
        "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    }
    (folder / "dataset.jsonl").write_text(json.dumps(record) + "\n")
    for n, tag in enumerate(("idk", "boundary", "clarify")):
        turns = (
            Message("user", f"Question {n} about hives?"),
            Message("assistant", f"Answer {n}."),
        )
        add_draft(folder, new_draft(turns, DraftTarget((20, 39), tag), "scripted", (tag,)))
    return folder


def test_the_editor_text_round_trips() -> None:
    from tui.wire import DraftTurn

    turns = [DraftTurn("user", "a\n\nb"), DraftTurn("assistant", "### not a heading\nc")]
    assert from_text(as_text(turns)) == [
        DraftTurn("user", "a\n\nb"),
        DraftTurn("assistant", "### not a heading\nc"),
    ]


@pytest.mark.timeout(120)
async def test_accept_reject_and_edit_from_the_keyboard(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = write_persona()
    server = create_app(ServerSettings(model=str(tiny_model_dir), adapters_dir=str(tmp_path / "a")))
    client = ApiClient("http://localhost", transport=httpx.ASGITransport(app=server))
    settings = TuiSettings(watch=False, start_server=False)
    app = make_app(settings, client)
    record_notes(app)
    async with app.run_test(size=(120, 40)) as pilot:
        # The server app has no model loading here, so the app's health watch never settles:
        # wait on conditions, never on "all workers done".
        await pilot.press("f5")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DataScreen)
        screen.persona_select.value = "wren"
        await pilot.pause()
        await pilot.press("ctrl+t", "ctrl+t")
        assert screen.query_one(TabbedContent).active == "tab-review"
        pane = screen.query_one(DraftReviewPane)
        await pilot.pause()
        assert pane.table.has_focus  # the keys work as soon as the tab shows
        await wait_for(pilot, lambda: len(pane.drafts) == 3, 30)
        assert [d.target.tag for d in pane.drafts] == ["idk", "boundary", "clarify"]
        assert "Question 0 about hives?" in str(pane.view.render())

        await pilot.press("a")
        await wait_for(pilot, lambda: len(pane.drafts) == 2, 30)
        lines = (folder / "dataset.jsonl").read_text().splitlines()
        assert len(lines) == 2
        assert json.loads(lines[1])["tags"] == ["idk"]
        assert "dataset.jsonl: 2 records" in str(pane.status.render())
        assert [d.target.tag for d in pane.drafts] == ["boundary", "clarify"]

        await pilot.press("r")
        await wait_for(pilot, lambda: len(pane.drafts) == 1, 30)
        assert [d.target.tag for d in read_drafts(folder)] == ["clarify"]
        assert len((folder / "dataset.jsonl").read_text().splitlines()) == 2

        await pilot.press("e")
        await pilot.pause()
        assert pane.editor.display
        pane.editor.text = (
            "### user\nQuestion about swarms?\n\n### assistant\nThey leave in spring."
        )
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not pane.editor.display, 30)
        (draft,) = read_drafts(folder)
        assert [m.content for m in draft.messages] == [
            "Question about swarms?",
            "They leave in spring.",
        ]

        await pilot.press("e")
        await pilot.pause()
        pane.editor.text = "### user\nonly a question"  # the server's checker refuses this
        await pilot.press("ctrl+s")
        notes: list[str] = app.notes_log  # type: ignore[attr-defined]
        await wait_for(pilot, lambda: any("no assistant turn" in n for n in notes), 30)
        assert pane.editor.display
        await pilot.press("escape")
        await pilot.pause()
        assert not pane.editor.display
        assert read_drafts(folder)[0].messages[0].content == "Question about swarms?"
