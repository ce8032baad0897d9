"""New persona and Import card from the TUI: the forms, the real routes, the lists refreshed."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec
from fakes import ScriptedClient, notes, record_notes, settle, wait_for
from litestar import Litestar

from data.scaffold import create_persona
from server.api.persona_watch import event_of
from server.api.routes.evals import eval_routes
from server.api.routes.persona_create import persona_create_routes
from server.api.routes.personas import persona, personas
from server.catalog import Catalog
from server.errors import handle_exception
from server.metrics import ServerMetrics
from server.settings import ServerSettings
from server.state import ServerState
from tui.api import ApiClient
from tui.app import StudioApp, make_app
from tui.screens.data import DataScreen
from tui.screens.eval import EvalScreen
from tui.screens.persona_dialogs import ImportCardDialog, NewPersonaDialog
from tui.settings import TuiSettings

SIZE = (120, 40)
CARDS = Path(__file__).parents[1] / "fixtures" / "cards"


def persona_server() -> Litestar:
    """The real persona, create, import and data routes over the home folder and the samples."""
    state = ServerState.create(
        ServerSettings(), Catalog.discover([]), ServerMetrics(1, lambda: None)
    )
    return Litestar(
        route_handlers=[personas, persona, *persona_create_routes(), *eval_routes()],
        state=state,
        exception_handlers={Exception: handle_exception},
    )


def studio() -> StudioApp:
    """The TUI whose persona calls reach the real routes."""
    client = ScriptedClient(transport=httpx.ASGITransport(app=persona_server()))
    client.personas = lambda: ApiClient.personas(client)  # type: ignore[method-assign]
    app = make_app(TuiSettings(watch=False, start_server=False), client)
    record_notes(app)
    return app


async def test_new_persona_from_the_data_screen(persona_home: Path) -> None:
    app = studio()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        screen = app.screen
        assert isinstance(screen, DataScreen)
        await wait_for(pilot, lambda: screen.persona_select.value == "juni")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewPersonaDialog))
        await pilot.press(*"grumpy-parrot", "enter")
        await wait_for(pilot, lambda: screen.persona_select.value == "grumpy-parrot")
        await settle(pilot)
        folder = persona_home / "personas" / "grumpy-parrot"
        assert (folder / "persona.toml").is_file()
        assert any(
            n.startswith("Created persona grumpy-parrot: " + str(folder)) for n in notes(app)
        )
        # The new persona's data is checked at once: the template has no problems.
        await wait_for(pilot, lambda: screen.checked is not None)
        assert screen.problems == []


async def test_new_persona_refused_name_is_shown(persona_home: Path) -> None:
    app = studio()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewPersonaDialog))
        await pilot.press(*"juni", "enter")
        await wait_for(pilot, lambda: any("served already" in n for n in notes(app)))
        assert not (persona_home / "personas" / "juni").exists()


async def test_import_card_from_the_command_palette(persona_home: Path) -> None:
    app = studio()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        screen = app.screen
        assert isinstance(screen, DataScreen)
        await pilot.press("ctrl+p")
        await pilot.press(*"Import card")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ImportCardDialog))
        app.screen.path_input.value = str(CARDS / "tamsin.png")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(n.startswith("Imported persona") for n in notes(app)))
        made = app.persona_made
        assert made is not None
        assert (persona_home / "personas" / made / "persona.toml").is_file()
        await wait_for(pilot, lambda: screen.persona_select.value == made)


async def test_a_persona_event_refreshes_the_lists(persona_home: Path) -> None:
    server = persona_server()
    client = ScriptedClient(transport=httpx.ASGITransport(app=server))
    client.personas = lambda: ApiClient.personas(client)  # type: ignore[method-assign]
    app = make_app(TuiSettings(watch=False, start_server=False), client)
    record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        screen = app.screen
        assert isinstance(screen, EvalScreen)
        await wait_for(pilot, lambda: screen.persona_select.value == "juni")
        made = create_persona("parrot", persona_home / "personas")
        (made.folder / "eval.jsonl").unlink()
        catalog: Catalog = server.state.catalog
        [change] = catalog.rescan()
        app._persona_event(event_of(change))
        await wait_for(pilot, lambda: "parrot" in screen.without_suite)
        screen.persona_select.value = "parrot"
        await pilot.pause()
        assert "parrot has no eval.jsonl" in str(screen.suite_note.render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert any("no eval.jsonl to run" in n for n in notes(app))
        # A card that breaks: a warning, and the last good version stays listed.
        card = made.folder / "persona.toml"
        card.write_text(card.read_text().replace("temperature = 0.8", "temperature = 7.0"))
        [change] = catalog.rescan()
        app._persona_event(event_of(change))
        await wait_for(pilot, lambda: any("card not loaded" in n for n in notes(app)))
        info = await ApiClient.persona(client, "parrot")
        assert info.error is not None
        assert "sampling.temperature" in info.error


def test_histogram_ticks_are_whole_numbers() -> None:
    from tui.screens.data import count_ticks

    assert count_ticks(0) == [0]
    assert count_ticks(3) == [0, 1, 2, 3]
    assert count_ticks(7) == [0, 2, 4, 6, 8]
    assert count_ticks(31) == [0, 7, 14, 21, 28, 35]


async def test_footers_fit(persona_home: Path) -> None:
    from textual.widgets import Footer

    for size, screens in (((80, 24), ("f4", "f6")), ((120, 36), ("f1", "f2", "f3", "f4", "f5"))):
        app = studio()
        async with app.run_test(size=size) as pilot:
            for key in screens:
                await pilot.press(key)
                await settle(pilot)
                footer = app.screen.query_one(Footer)
                used = sum(w.region.width for w in footer.children)
                assert used <= size[0], f"{key} footer needs {used} columns at {size}"


async def test_new_persona_is_in_the_palette_once(persona_home: Path) -> None:
    app = studio()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles.count("New persona") == 1
        assert titles.count("Import card") == 1


async def test_keep_an_exchange_from_the_chat_as_a_training_example(persona_home: Path) -> None:
    from textual.widgets import Footer

    from server.api.routes.records import record_routes
    from tui.conversations import Turn
    from tui.screens.chat import ChatScreen
    from tui.screens.record_editor import RecordEditor

    folder = create_persona("parrot", persona_home / "personas").folder
    train = folder / "train.jsonl"
    before = train.read_text().splitlines()
    metrics = ServerMetrics(1, lambda: None)
    state = ServerState.create(ServerSettings(), Catalog.discover([]), metrics)
    server = Litestar(
        route_handlers=[personas, persona, *record_routes()],
        state=state,
        exception_handlers={Exception: handle_exception},
    )
    client = ScriptedClient(transport=httpx.ASGITransport(app=server))
    client.personas = lambda: ApiClient.personas(client)  # type: ignore[method-assign]
    app = make_app(TuiSettings(watch=False, start_server=False), client)
    record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        [keep] = [c for c in app.get_system_commands(screen) if c.title == "Keep"]
        assert "training example" in keep.help  # in the command palette too
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert any("Nothing to keep yet" in n for n in notes(app))
        turns = (Turn("user", "How much for the rope?"), Turn("assistant", "Three coins. Squawk."))
        screen.conversation = msgspec.structs.replace(
            screen.conversation, model="parrot", turns=turns
        )
        screen.personas = {p.id: p for p in await ApiClient.personas(client)}
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RecordEditor), 30)
        editor = app.screen
        assert isinstance(editor, RecordEditor)
        assert [(m.role, m.content) for m in editor.messages] == [
            ("user", "How much for the rope?"),
            ("assistant", "Three coins. Squawk."),
        ]
        assert editor.turns[1].text_area.has_focus  # the reply, to edit first
        editor.turns[1].text_area.text = "Three coins, and not a feather less. Squawk!"
        editor.tag_list.select("general")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any(n.startswith("Kept for parrot") for n in notes(app)))
        assert isinstance(app.screen, ChatScreen)
        lines = train.read_text().splitlines()
        assert lines[:-1] == before
        assert msgspec.json.decode(lines[-1]) == {
            "messages": [
                {"role": "user", "content": "How much for the rope?"},
                {"role": "assistant", "content": "Three coins, and not a feather less. Squawk!"},
            ],
            "tags": ["general"],
        }
        # The chat itself is untouched: only the saved example was edited.
        assert screen.conversation.turns[-1].content == "Three coins. Squawk."

        # Cancelling writes nothing.
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RecordEditor), 30)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), 10)
        assert len(train.read_text().splitlines()) == len(lines)

        screen.conversation = msgspec.structs.replace(screen.conversation, model="juni")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("persona new NAME --from juni" in n for n in notes(app)))
        assert isinstance(app.screen, ChatScreen)
        footer = screen.query_one(Footer)
        assert sum(w.region.width for w in footer.children) <= SIZE[0]
