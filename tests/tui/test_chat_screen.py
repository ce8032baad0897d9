"""Chat screen, driven with the keyboard against the scripted client."""

from __future__ import annotations

import msgspec
from fakes import ScriptedClient, notes, settle
from textual.pilot import Pilot
from textual.widgets import Input

from data.home import conversations_dir
from tui.api import ApiError
from tui.app import StudioApp
from tui.screens.chat import ChatScreen
from tui.wire import AdapterEvent

SIZE = (120, 40)


async def send(pilot: Pilot[None], text: str) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    screen.prompt.focus()
    screen.prompt.value = text
    await pilot.press("enter")
    await settle(pilot)


async def test_a_reply_streams_in_with_its_adapter_version_and_is_saved(
    app: StudioApp, client: ScriptedClient
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        assert screen.model_select.value == "juni"  # the first persona is preselected
        assert "Juni Pebblewick" in str(screen.about.render())
        temperature = screen.sampling.query_one("#sampling-temperature", Input)
        assert temperature.placeholder == "0.8"  # the persona's resolved default
        await send(pilot, "Where do crabs sleep?")
        views = screen.log_view.messages
        assert [v.role for v in views] == ["user", "assistant"]
        assert views[1].markdown.source == client.reply
        caption = str(views[1].caption.render())
        assert "adapter run-1:40" in caption
        assert "tok/s" in caption
        saved = list(conversations_dir().glob("*.json"))
        assert len(saved) == 1
        stored = app.conversations.load(saved[0].stem)
        assert stored.turns[-1].adapter == "run-1:40"


async def test_sampling_overrides_travel_with_the_request(
    app: StudioApp, client: ScriptedClient
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        screen.sampling.query_one("#sampling-temperature", Input).value = "0.3"
        screen.sampling.query_one("#sampling-max_tokens", Input).value = "64"
        await pilot.pause()
        await send(pilot, "hi")
        _model, messages, overrides = client.requests[-1]
        assert (overrides.temperature, overrides.max_tokens, overrides.top_p) == (0.3, 64, None)
        assert [m.content for m in messages] == ["hi"]


async def test_multi_turn_regenerate_and_edit_last(app: StudioApp, client: ScriptedClient) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await send(pilot, "first")
        await send(pilot, "second")
        assert [m.role for m in client.requests[-1][1]] == ["user", "assistant", "user"]
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert len(client.requests) == 3
        assert client.requests[-1][1] == client.requests[-2][1]  # the same question again
        assert len(screen.log_view.messages) == 4
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert screen.prompt.value == "second"
        assert len(screen.log_view.messages) == 2
        assert [t.content for t in screen.conversation.turns][:1] == ["first"]
        await pilot.press("end", *" again", "enter")
        await settle(pilot)
        assert client.requests[-1][1][-1].content == "second again"


async def test_escape_stops_a_streaming_reply(app: StudioApp, client: ScriptedClient) -> None:
    client.reply = " ".join(f"word{i}" for i in range(200))
    client.delay = 0.02
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        screen.prompt.value = "talk a lot"
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert screen.generating
        await pilot.press("escape")
        await settle(pilot)
        assert not screen.generating
        last = screen.conversation.turns[-1]
        assert last.finish_reason == "stopped"
        assert 0 < len(last.content.split()) < 200
        assert "stopped" in str(screen.log_view.messages[-1].caption.render())


async def test_a_refused_request_is_a_notification_not_a_crash(
    app: StudioApp, client: ScriptedClient
) -> None:
    client.fail_chat = ApiError("Request refused (400)", "temperature: must be <= 2")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await send(pilot, "hello")
        assert "Request refused (400): temperature: must be <= 2" in notes(app)
        assert [v.role for v in screen.log_view.messages] == ["user"]  # no empty reply left
        client.fail_chat = None
        await pilot.press("ctrl+r")  # retry the same message
        await settle(pilot)
        assert [v.role for v in screen.log_view.messages] == ["user", "assistant"]


async def test_a_saved_conversation_reopens(app: StudioApp, client: ScriptedClient) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await send(pilot, "remember me")
        first_id = screen.conversation.id
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert screen.log_view.messages == []
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")  # the newest conversation is highlighted first
        await settle(pilot)
        assert screen.conversation.id == first_id
        texts = [v.markdown.source for v in screen.log_view.messages]
        assert texts == ["remember me", client.reply]
        assert "adapter run-1:40" in str(screen.log_view.messages[1].caption.render())


async def test_every_bound_action_is_in_the_command_palette(app: StudioApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Stop", "Regenerate", "Edit last", "New chat", "Open chat", "Train"} <= titles
        await pilot.press("f2")
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Start training", "Cancel", "Pause", "Resume", "Chat"} <= titles


async def test_a_hot_reload_of_the_chosen_persona_updates_its_details(
    app: StudioApp, client: ScriptedClient
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        assert "Active adapter: run-1:40" in str(screen.about.render())
        client.juni = msgspec.structs.replace(client.juni, active_adapter="run-2:10")
        app.adapter_event = AdapterEvent("loaded", "juni", "run-2:10", "", 0.0)
        await settle(pilot)
        assert "Active adapter: run-2:10" in str(screen.about.render())


async def test_a_new_chat_opens_with_one_of_the_personas_greetings(
    app: StudioApp, client: ScriptedClient
) -> None:
    greetings = ["Ahoy there!", "Oh! A visitor at the lighthouse."]
    client.juni = msgspec.structs.replace(client.juni, greetings=greetings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        views = screen.log_view.messages
        assert [(v.role, v.markdown.source) for v in views] == [("assistant", "Ahoy there!")]
        await pilot.press("ctrl+r")  # a greeting is not a reply to regenerate
        await settle(pilot)
        assert len(screen.log_view.messages) == 1
        await send(pilot, "Hello!")
        sent = client.requests[-1][1]
        assert [(m.role, m.content) for m in sent] == [
            ("assistant", "Ahoy there!"),
            ("user", "Hello!"),
        ]
        await pilot.press("ctrl+n")
        await settle(pilot)
        texts = [v.markdown.source for v in screen.log_view.messages]
        assert texts == ["Oh! A visitor at the lighthouse."]


async def test_picking_a_model_with_ctrl_g_returns_to_the_message_box(app: StudioApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        assert screen.model_select.prompt == "choose a model"  # not "loading models…"
        await pilot.press("ctrl+g")
        assert screen.model_select.has_focus
        await pilot.press("enter")  # open the list
        await pilot.press("down", "enter")  # the next model id
        await settle(pilot)
        assert screen.model_select.value == "juni@run-1:20"
        assert screen.prompt.has_focus


async def test_a_reply_the_guard_acted_on_is_marked_under_it(
    app: StudioApp, client: ScriptedClient
) -> None:
    from tui.api import piece_from_chunk
    from tui.wire import ChatCompletionChunk, PersonaGuard

    client.guard = PersonaGuard("disclosure", 0.97, "reply")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await send(pilot, "someone hurts me")
        caption = str(screen.log_view.messages[-1].caption.render())
        assert "guard answered with the author's reply (disclosure), score 0.97" in caption
        client.guard = PersonaGuard(None, 0.01, "none")
        await send(pilot, "where do crabs sleep")
        assert "guard" not in str(screen.log_view.messages[-1].caption.render())
    # The marker comes from the chunks' `persona_guard`, as the server sends it.
    chunk = msgspec.json.decode(
        b'{"id": "c", "created": 1, "model": "juni", "choices": [], "system_fingerprint": "x",'
        b' "persona_adapter": null, "object": "chat.completion.chunk",'
        b' "persona_guard": {"category": "boundary", "score": 0.9, "action": "steer"}}',
        type=ChatCompletionChunk,
    )
    assert piece_from_chunk(chunk).guard == PersonaGuard("boundary", 0.9, "steer")
