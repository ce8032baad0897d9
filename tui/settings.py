"""TUI settings: `tui.toml` in the home folder first, then `PERSONA_*` environment overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from data.home import home_dir, studio_command

DEFAULT_URL = "http://127.0.0.1:8000"


class SettingsError(Exception):
    """The settings file or an environment override is invalid."""


class TuiSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the TUI needs to know before it starts."""

    url: str = DEFAULT_URL
    """The server root; the OpenAI API is under `/v1`."""
    model: str = "embedded"
    """The base model of a server the TUI starts itself (`embedded`, a folder or a repo id)."""
    start_server: bool = True
    """Start `persona serve` when nothing answers at `url`."""
    persona_command: list[str] = []
    """How to run `persona serve` when the TUI starts a server; empty: this Python's `-m studio`."""
    poll_seconds: float = 2.0
    """How often to ask `/health`."""
    timeout: float = 30.0
    """Seconds to wait for an ordinary (non-streaming) request."""
    watch: bool = True
    """Poll health and follow adapter events in the background (off for still snapshots)."""

    def command(self, *args: str) -> list[str]:
        """The argv of a `persona` subcommand."""
        base = self.persona_command or studio_command()
        return [*base, *args]


def settings_path() -> Path:
    """Where the TUI settings file lives."""
    return home_dir() / "tui.toml"


ENV_FIELDS = {"PERSONA_URL": "url", "PERSONA_MODEL": "model"}
"""Environment variables that override a settings field."""


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> TuiSettings:
    """Read the settings file (if any), then apply environment overrides."""
    path = path or settings_path()
    environ = os.environ if environ is None else environ
    settings = TuiSettings()
    if path.is_file():
        try:
            settings = msgspec.toml.decode(path.read_bytes(), type=TuiSettings)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SettingsError(f"{path}: {exc}") from None
    changes = {field: environ[name] for name, field in ENV_FIELDS.items() if environ.get(name)}
    if environ.get("PERSONA_START_SERVER"):
        changes["start_server"] = environ["PERSONA_START_SERVER"].lower() not in (
            "0",
            "no",
            "false",
        )
    return msgspec.structs.replace(settings, **changes) if changes else settings
