"""Fixtures for TUI tests: a scripted client, the scripted `persona` command, an app."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FAKE_PERSONA, ScriptedClient, record_notes

from tui.app import StudioApp, make_app
from tui.settings import TuiSettings


@pytest.fixture
def client() -> ScriptedClient:
    """A scripted server client with one persona, juni."""
    return ScriptedClient()


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file where the scripted `persona` command writes every argv it was run with."""
    path = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_PERSONA_LOG", str(path))
    return path


@pytest.fixture
def app(client: ScriptedClient) -> StudioApp:
    """The studio over the scripted client; no background watchers, no server to start."""
    settings = TuiSettings(watch=False, start_server=False, persona_command=FAKE_PERSONA)
    studio = make_app(settings, client)
    record_notes(studio)
    return studio
