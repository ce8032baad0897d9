"""Fixtures for TUI tests: a scripted client and an app over it."""

from __future__ import annotations

import pytest
from fakes import ScriptedClient, record_notes

from tui.app import StudioApp, make_app
from tui.settings import TuiSettings


@pytest.fixture
def client() -> ScriptedClient:
    """A scripted server client with one persona, juni."""
    return ScriptedClient()


@pytest.fixture
def app(client: ScriptedClient) -> StudioApp:
    """The studio over the scripted client; no background watchers, no server to start."""
    settings = TuiSettings(watch=False, start_server=False)
    studio = make_app(settings, client)
    record_notes(studio)
    return studio
