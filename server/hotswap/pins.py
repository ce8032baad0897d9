"""Persisted pins: which personas serve a chosen checkpoint instead of following the newest."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from adapters.registry import SAFE_NAME
from data.atomic import write_bytes

log = logging.getLogger("persona.adapters")


class Pin(msgspec.Struct, frozen=True):
    """A persona pinned to one checkpoint."""

    run: str
    step: int


def read_pins(path: Path) -> dict[str, Pin]:
    """The pins stored at `path`; an absent or unreadable file means none (logged)."""
    try:
        pins = msgspec.json.decode(path.read_bytes(), type=dict[str, Pin])
    except FileNotFoundError:
        return {}
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return {}
    return {
        p: pin for p, pin in pins.items() if SAFE_NAME.fullmatch(p) and SAFE_NAME.fullmatch(pin.run)
    }


def write_pins(path: Path, pins: dict[str, Pin]) -> None:
    """Store pins atomically."""
    write_bytes(path, msgspec.json.format(msgspec.json.encode(pins), indent=2))
