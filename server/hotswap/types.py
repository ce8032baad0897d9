"""Wire types of the adapter admin API: pure msgspec, so the TUI may import them."""

from __future__ import annotations

from typing import Literal

import msgspec

Mode = Literal["follow", "pinned"]
EventType = Literal["loaded", "failed", "activated", "unloaded", "persona", "persona_failed"]
"""`persona`: a persona was added, reloaded or removed; `persona_failed`: its card stopped
parsing (the last good version keeps serving). Persona events carry no version."""


class CheckpointInfo(msgspec.Struct, frozen=True):
    """One published checkpoint of a run."""

    step: int
    version: str
    """`run:step`, the part of a pinned model id after `@`."""
    created: float
    metrics: dict[str, float] = {}


class RunInfo(msgspec.Struct, frozen=True):
    """One training run of a persona and its checkpoints, oldest first."""

    run: str
    status: str
    """The trainer's status from `run.json` (`running`, `done`, ...), or `unknown`."""
    best: int | None
    latest: int | None
    checkpoints: list[CheckpointInfo]


class LoadError(msgspec.Struct, frozen=True):
    """The most recent adapter of a persona that could not be loaded, and why."""

    version: str | None
    message: str
    time: float


class PersonaAdapters(msgspec.Struct, frozen=True):
    """Everything the admin API tells about one persona's adapters."""

    persona: str
    mode: Mode
    """`follow`: the newest checkpoint that loads serves; `pinned`: one chosen checkpoint serves."""
    active: str | None
    """The version bare `persona` requests run with; None serves the base model."""
    loaded: list[str]
    """Versions held in memory by the engine, most recently used first."""
    last_error: LoadError | None
    runs: list[RunInfo]


class AdapterList(msgspec.Struct, frozen=True):
    """Response of `GET /v1/adapters`."""

    data: list[PersonaAdapters]
    object: Literal["list"] = "list"


class AdapterEvent(msgspec.Struct, frozen=True):
    """One server-sent event on `GET /v1/adapters/events`."""

    type: EventType
    persona: str
    version: str | None
    message: str
    time: float


class ActivateRequest(msgspec.Struct, frozen=True):
    """Body of `POST /v1/adapters/{persona}/activate`; no step means the run's latest."""

    run: str
    step: int | None = None


class LoadLoraRequest(msgspec.Struct, frozen=True):
    """vLLM's `POST /v1/load_lora_adapter` body."""

    lora_name: str
    lora_path: str


class UnloadLoraRequest(msgspec.Struct, frozen=True):
    """vLLM's `POST /v1/unload_lora_adapter` body."""

    lora_name: str
