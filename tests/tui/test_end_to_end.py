"""End to end: the TUI and a real `persona serve` on the tiny model, with *different* home
folders. The TUI trains through the fine-tuning API, the run lands in the server's registry, the
TUI chats with the new checkpoint, runs an evaluation and shows the server's data."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import record_notes, wait_for

from data.home import studio_command
from tui.api import ApiClient
from tui.app import make_app
from tui.screens.chat import ChatScreen
from tui.screens.data import DataScreen
from tui.screens.eval import EvalScreen
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
    suite = [
        {
            "id": f"g-{n}",
            "category": "general",
            "length": [1, 40],
            "messages": [{"role": "user", "content": f"What do you think of {topic}?"}],
        }
        for n, topic in enumerate(("clouds", "bread"))
    ]
    (folder / "eval.jsonl").write_text("".join(json.dumps(c) + "\n" for c in suite))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(home: Path, model: Path, port: int, log: Path) -> Iterator[None]:
    """`persona serve` in its own home folder (its personas, adapters, jobs and files)."""
    env = os.environ | {"PERSONA_HOME": str(home)}
    command = studio_command("serve", "--port", str(port), "--model", str(model))
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.serial
@pytest.mark.mlx
async def test_train_chat_eval_and_data_from_the_tui_on_a_server_with_its_own_home(
    tiny_model_dir: Path, tmp_path: Path, persona_home: Path
) -> None:
    server_home = tmp_path / "server-home"
    write_persona(server_home / "personas" / "pip")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = TuiSettings(url=url, start_server=False, poll_seconds=0.5)
    app = make_app(settings, ApiClient(url))
    record_notes(app)
    with server(server_home, tiny_model_dir, port, tmp_path / "server.log"):
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.status.health.state == "ready", 300)

            # Watchers run for good here, so wait on conditions, never on "all workers done".
            await pilot.press("f2")
            train = app.screen
            assert isinstance(train, TrainScreen)
            await wait_for(pilot, lambda: "pip" in train.personas, 30)
            train.persona_select.value = "pip"
            await pilot.pause()
            assert train.form.query_one("#train-rank").value == "4"  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            # The monitor starts a fresh TrainProgress when the run starts: look it up anew.
            await wait_for(pilot, lambda: train.monitor.progress.state in ("done", "failed"), 400)
            progress = train.monitor.progress
            assert progress.state == "done", progress.message
            await wait_for(
                pilot, lambda: train.job is not None and train.job.status == "succeeded", 60
            )
            newest = progress.checkpoints[-1].version
            await wait_for(pilot, lambda: progress.checkpoints[-1].live, 60)
            assert any(n.startswith("Hot-loaded: pip@") for n in app.notes_log)  # type: ignore[attr-defined]
            run = newest.split(":")[0]
            assert (server_home / "adapters" / "pip" / run / "run.json").is_file()

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
            assert chat.conversation.turns[-1].adapter == newest

            await pilot.press("f6")
            evaluation = app.screen
            assert isinstance(evaluation, EvalScreen)
            await wait_for(pilot, lambda: isinstance(evaluation.persona_select.value, str), 30)
            evaluation.persona_select.value = "pip"
            await pilot.pause()
            evaluation.models_input.value = f"pip@{newest}"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: evaluation.report_shown is not None, 300)
            report = evaluation.report_shown
            assert report is not None
            assert [m.model for m in report.models] == [f"pip@{newest}"]
            assert evaluation.sample_table.row_count == 2

            await pilot.press("f5")
            data = app.screen
            assert isinstance(data, DataScreen)
            await wait_for(pilot, lambda: isinstance(data.persona_select.value, str), 30)
            data.persona_select.value = "pip"
            await wait_for(pilot, lambda: data.stats is not None and data.checked is not None, 60)
            assert data.stats is not None
            assert data.stats.records == 10
            assert data.checked is not None
            assert data.checked.files == ["train.jsonl", "eval.jsonl"]
    # The TUI's own home holds no persona, adapter or job: it all lives on the server.
    assert not any(
        (persona_home / name).exists() for name in ("personas", "adapters", "fine_tuning")
    )
