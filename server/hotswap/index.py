"""What checkpoints each persona has, and which of them are refused and why.

A checkpoint is refused when its files fail the checks (`adapters.verify`, remembered per manifest
key so a folder is checked once) or when the engine refused to load it (remembered until the
persona is asked to follow again). Scans read the registry off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from adapters.registry import SAFE_NAME, Checkpoint, Registry, RegistryError, run_sort_key
from adapters.verify import checkpoint_problems
from server.engine.lora_load import unservable


class AdapterNotFoundError(RegistryError):
    """A persona, run, checkpoint or LoRA name that does not exist."""


def order(ckpt: Checkpoint) -> tuple[float, tuple[int, str], int]:
    """Newest last: by creation time, then run number, then step."""
    m = ckpt.manifest
    return (m.created, run_sort_key(m.run), m.step)


class CheckpointIndex:
    """Every persona's published checkpoints, newest last, with the reason each one is refused."""

    def __init__(self, registry: Registry, base_hash: Callable[[], str | None]) -> None:
        self.registry = registry
        self.base_hash = base_hash
        """The served base model's content hash, which a checkpoint must have been trained on."""
        self._by_persona: dict[str, list[Checkpoint]] = {}
        self._failed: dict[str, str] = {}
        """Manifest keys a load attempt refused, with the reason."""
        self._checked: dict[str, str | None] = {}
        """Manifest keys the file checks have seen: the problem found, or None."""

    def personas(self) -> set[str]:
        """The personas scanned so far."""
        return set(self._by_persona)

    def checkpoints(self, persona: str) -> list[Checkpoint]:
        """A persona's checkpoints as last scanned, newest last."""
        return self._by_persona.get(persona, [])

    def usable(self, persona: str) -> list[Checkpoint]:
        """A persona's checkpoints that are not refused."""
        return [c for c in self.checkpoints(persona) if self.refusal(c.manifest.key) is None]

    async def rescan(self, persona: str) -> None:
        """Re-read a persona's checkpoints; file checks of new ones run in the same thread."""
        known = set(self._checked)

        def scan() -> tuple[list[Checkpoint], dict[str, str | None]]:
            found = [
                c
                for run in self.registry.runs(persona)
                for c in self.registry.checkpoints(persona, run)
            ]
            fresh = {c.manifest.key: self._check(c) for c in found if c.manifest.key not in known}
            return sorted(found, key=order), fresh

        self._by_persona[persona], fresh = await asyncio.to_thread(scan)
        self._checked.update(fresh)

    async def problem(self, ckpt: Checkpoint) -> str | None:
        """What the file checks found wrong with a checkpoint (checked once per manifest key)."""
        key = ckpt.manifest.key
        if key not in self._checked:
            self._checked[key] = await asyncio.to_thread(self._check, ckpt)
        return self._checked[key]

    def refusal(self, key: str) -> str | None:
        """Why a checkpoint cannot serve, or None when it can."""
        return self._failed.get(key) or self._checked.get(key)

    def is_failed(self, key: str) -> bool:
        """Whether a load of this checkpoint was refused (by its checks or the engine)."""
        return key in self._failed

    def mark_failed(self, key: str, reason: str) -> None:
        """Remember that loading this checkpoint was refused."""
        self._failed[key] = reason

    def mark_loaded(self, key: str) -> None:
        """Forget an earlier refusal of a checkpoint that has now loaded."""
        self._failed.pop(key, None)

    def forgive_engine_refusals(self, persona: str) -> None:
        """Let the engine try again what it refused; checkpoints with broken files stay refused."""
        for ckpt in self.checkpoints(persona):
            if self._checked.get(ckpt.manifest.key) is None:
                self._failed.pop(ckpt.manifest.key, None)

    def find(self, persona: str, run: str, step: int | str | None) -> Checkpoint:
        """One checkpoint of a run: a step, a `best`/`latest` marker, or the newest (None)."""
        if not SAFE_NAME.fullmatch(run):
            raise RegistryError(f"invalid run name {run!r}")
        ckpts = [c for c in self.checkpoints(persona) if c.manifest.run == run]
        if not ckpts:
            raise AdapterNotFoundError(f"{persona} has no checkpoints in run {run!r}")
        if step in ("best", "latest"):
            marked = self.registry.marker(persona, run, str(step))
            if marked is None:
                raise AdapterNotFoundError(f"{persona}@{run} has no {step} marker")
            step = marked
        if step is None:
            return max(ckpts, key=lambda c: c.manifest.step)
        for ckpt in ckpts:
            if ckpt.manifest.step == step:
                return ckpt
        raise AdapterNotFoundError(f"{persona}@{run} has no checkpoint at step {step}")

    def _check(self, ckpt: Checkpoint) -> str | None:
        kind = ckpt.manifest.lora.fine_tune_type
        if kind != "lora":  # refused before any load, so /v1/models never lists it
            return unservable(ckpt.manifest.persona, ckpt.manifest.version, kind)
        problems = checkpoint_problems(ckpt, self.base_hash())
        return "; ".join(problems) if problems else None
