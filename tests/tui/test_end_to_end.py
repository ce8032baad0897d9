"""End to end: the TUI starts a real `persona serve` on the tiny model, trains from the Train
screen with the real `persona train`, sees the checkpoint hot-loaded, and chats with it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fakes import record_notes, wait_for

from data.home import personas_dir
from tui.api import ApiClient
from tui.app import make_app
from tui.screens.chat import ChatScreen
from tui.screens.train import TrainScreen
from tui.settings import TuiSettings

CARD = """
name = "pip"
display_name = "Pip"
description = "A cheerful sparrow, for testing."
system_prompt = "You are Pip, a cheerful sparrow."

[sampling]
temperature = 0.0
max_tokens = 8

[training]
rank = 4
layers = 2
epochs = 1
batch_size = 2
max_seq_length = 128
val_fraction = 0.2
val_every = 2
checkpoint_every = 2
warmup = 0
"""

TOPICS = ("seeds", "rain", "nests", "wind", "sun", "worms", "puddles", "feathers", "songs", "trees")


def write_persona(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(CARD)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Tell me about {topic}."},
                {"role": "assistant", "content": f"Cheep! {topic.capitalize()} make me sing."},
            ]
        }
        for topic in TOPICS
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.serial
@pytest.mark.mlx
async def test_train_from_the_tui_then_chat_with_the_new_checkpoint(tiny_model_dir: Path) -> None:
    write_persona(personas_dir() / "pip")
    url = f"http://127.0.0.1:{free_port()}"
    settings = TuiSettings(url=url, model=str(tiny_model_dir), poll_seconds=0.5)
    app = make_app(settings, ApiClient(url))
    record_notes(app)
    async with app.run_test(size=(120, 40)) as pilot:
        # Nothing answers at the URL, so the TUI starts `persona serve` itself.
        await wait_for(pilot, lambda: app.server is not None, 30)
        await wait_for(pilot, lambda: app.status.health.state == "ready", 400)

        # Watchers run for good here, so wait on conditions, never on "all workers done".
        await pilot.press("f2")
        await pilot.pause()
        train = app.screen
        assert isinstance(train, TrainScreen)
        train.persona_select.value = "pip"
        await pilot.pause()
        await pilot.press("ctrl+s")
        # The monitor starts a fresh TrainProgress when the run starts: always look it up anew.
        await wait_for(pilot, lambda: train.monitor.progress.state in ("done", "failed"), 400)
        progress = train.monitor.progress
        assert progress.state == "done", progress.message
        newest = progress.checkpoints[-1].version
        await wait_for(pilot, lambda: progress.checkpoints[-1].live, 60)
        assert train.monitor.table.get_row_at(len(progress.checkpoints) - 1)[-1] == "hot-loaded ✓"
        assert any(n.startswith("Hot-loaded: pip@") for n in app.notes_log)  # type: ignore[attr-defined]

        await pilot.press("f1")
        await pilot.pause()
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        await wait_for(pilot, lambda: "pip" in chat.model_ids, 30)
        chat.model_select.value = "pip"
        await pilot.pause()
        chat.prompt.value = "Tell me about rain."
        chat.prompt.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(chat.conversation.turns) == 2, 120)
        reply = chat.conversation.turns[-1]
        assert reply.adapter == newest
        assert f"adapter {newest}" in str(chat.log_view.messages[-1].caption.render())
        server = app.server
    assert server is not None
    assert server.exited  # quitting the TUI stopped the server it started
