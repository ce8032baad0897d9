"""Where runtime state lives: XDG data and cache folders, overridable with environment variables.

`PERSONA_HOME` moves everything (data in it, cache in `PERSONA_HOME/cache`). `PERSONA_CACHE`
moves only the cache, so tests can isolate user state yet share one prepared base model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "persona-studio"


def home_dir() -> Path:
    """The folder for user personas, trained adapters and saved conversations."""
    if home := os.environ.get("PERSONA_HOME"):
        return Path(home)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP


def cache_dir() -> Path:
    """The folder for rebuildable caches, such as the prepared embedded model."""
    if cache := os.environ.get("PERSONA_CACHE"):
        return Path(cache)
    if home := os.environ.get("PERSONA_HOME"):
        return Path(home) / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / APP


def personas_dir() -> Path:
    """User personas (one folder each, holding `persona.toml`)."""
    return home_dir() / "personas"


def adapters_dir() -> Path:
    """The adapter registry: `<persona>/<run-id>/...`."""
    return home_dir() / "adapters"


def conversations_dir() -> Path:
    """Saved chat conversations."""
    return home_dir() / "conversations"


def studio_command(*args: str) -> list[str]:
    """The argv that runs `persona ARGS` with this Python.

    `-P` keeps the working folder off `sys.path`: a user's own `data.py` or `server.py` there
    would otherwise shadow our packages inside the child.
    """
    return [sys.executable, "-P", "-m", "studio", *args]
