"""Render a persona's registry entries as admin API Structs and pinned model ids."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from adapters.registry import Checkpoint, Registry, run_sort_key
from server.hotswap.types import CheckpointInfo, LoadError, Mode, PersonaAdapters, RunInfo


class RunStatus(msgspec.Struct):
    """The one field of the trainer's `run.json` the admin API shows."""

    status: str = "unknown"


def run_status(registry: Registry, persona: str, run: str) -> str:
    """The trainer's status of a run, or `unknown` when run.json is absent or unreadable."""
    try:
        payload = (registry.run_dir(persona, run) / "run.json").read_bytes()
        return msgspec.json.decode(payload, type=RunStatus).status
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return "unknown"


def by_run(ckpts: Sequence[Checkpoint]) -> dict[str, list[Checkpoint]]:
    """Checkpoints grouped by run (runs in number order, steps ascending)."""
    runs: dict[str, list[Checkpoint]] = {}
    for ckpt in ckpts:
        runs.setdefault(ckpt.manifest.run, []).append(ckpt)
    return {
        run: sorted(runs[run], key=lambda c: c.manifest.step)
        for run in sorted(runs, key=run_sort_key)
    }


def loaded_versions(persona: str, keys: Sequence[str]) -> list[str]:
    """Versions of `persona` among the engine's loaded manifest keys (`persona@run:step#sha`)."""
    prefix = f"{persona}@"
    return [key[len(prefix) :].partition("#")[0] for key in keys if key.startswith(prefix)]


def pinned_ids(registry: Registry, persona: str, ckpts: Sequence[Checkpoint]) -> list[str]:
    """`persona@run`, `persona@run:step`, `persona@run:latest` and `:best` for what exists."""
    ids = []
    for run, group in by_run(ckpts).items():
        base = f"{persona}@{run}"
        ids += [base, f"{base}:latest"]
        steps = {c.manifest.step for c in group}
        if registry.marker(persona, run, "best") in steps:
            ids.append(f"{base}:best")
        ids += [f"{base}:{step}" for step in sorted(steps)]
    return ids


def describe(
    registry: Registry,
    persona: str,
    mode: Mode,
    active: str | None,
    loaded_keys: Sequence[str],
    last_error: LoadError | None,
    ckpts: Sequence[Checkpoint],
) -> PersonaAdapters:
    """The admin API's view of one persona."""
    runs = []
    for run, group in by_run(ckpts).items():
        infos = [
            CheckpointInfo(
                c.manifest.step, c.manifest.version, c.manifest.created, c.manifest.metrics
            )
            for c in group
        ]
        runs.append(
            RunInfo(
                run=run,
                status=run_status(registry, persona, run),
                best=registry.marker(persona, run, "best"),
                latest=registry.marker(persona, run, "latest"),
                checkpoints=infos,
            )
        )
    return PersonaAdapters(
        persona=persona,
        mode=mode,
        active=active,
        loaded=loaded_versions(persona, loaded_keys),
        last_error=last_error,
        runs=runs,
    )
