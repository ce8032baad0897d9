"""Which adapter each persona serves: version resolution, hot reload, pins and vLLM-style names.

A persona either follows its newest checkpoint that loads, or is pinned to one. New checkpoints
arrive through the watcher; each is checked, loaded on the engine's MLX thread, and only then
made active, so a bad one is recorded and refused while the previous version keeps serving.
Call `start()` after the engine has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.registry import (
    SAFE_NAME,
    Checkpoint,
    ModelRef,
    Registry,
    RegistryError,
    parse_model_id,
)
from data.home import home_dir
from data.problem import quote
from server.engine.types import AdapterBusy, AdapterRef
from server.hotswap.events import EventHub, Subscription
from server.hotswap.index import AdapterNotFoundError, CheckpointIndex
from server.hotswap.pins import Pin, read_pins, write_pins
from server.hotswap.state import describe, pinned_ids
from server.hotswap.types import AdapterEvent, EventType, LoadError, Mode, PersonaAdapters
from server.hotswap.watch import watch_registry

if TYPE_CHECKING:
    from server.engine.engine import Engine

log = logging.getLogger("persona.adapters")


READY_SECONDS = 10.0
"""How long `start()` waits for the watcher's OS watches before carrying on without them."""
BUSY_RETRY_SECONDS = 1.0
"""How soon a load refused only because every slot was busy is tried again."""

__all__ = ["AdapterNotFoundError", "AdapterRefusedError", "AdapterService"]


class AdapterRefusedError(RegistryError):
    """An adapter failed its checks or the engine refused to load it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class PersonaSlot:
    """What one persona serves right now."""

    mode: Mode = "follow"
    pin: Pin | None = None
    active: Checkpoint | None = None
    last_error: LoadError | None = None


class AdapterService:
    """Owns the persona -> active adapter mapping and keeps it in step with the registry."""

    def __init__(
        self,
        registry: Registry,
        engine: Engine,
        personas: Callable[[], Sequence[str]],
        *,
        watch: bool = True,
        debounce_ms: int = 10,
        step_ms: int = 5,
        pins_path: Path | None = None,
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.personas = personas
        """The configured persona names; only these can be requested."""
        self.watch = watch
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.pins_path = pins_path or home_dir() / "pins.json"
        self.hub = EventHub()
        self.index = CheckpointIndex(registry, lambda: engine.base_hash)
        """Every persona's checkpoints and the reason each refused one is refused."""
        self._slots: dict[str, PersonaSlot] = {}
        self._loras: dict[str, Checkpoint] = {}
        self._retries: dict[str, asyncio.Task[None]] = {}
        """Personas whose newest checkpoint waits for a free engine slot."""
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read pins, scan the registry, load each persona's active version, start watching."""
        for persona, pin in read_pins(self.pins_path).items():
            self._slots[persona] = PersonaSlot("pinned", pin)
        async with self._lock:
            await self._refresh(None)
        if self.watch:
            self._stop.clear()
            self._task = asyncio.create_task(
                watch_registry(
                    self.registry.root,
                    self._on_change,
                    self._stop,
                    ready=self._ready,
                    debounce_ms=self.debounce_ms,
                    step_ms=self.step_ms,
                ),
                name="adapter-watcher",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), READY_SECONDS)

    async def aclose(self) -> None:
        """Stop watching and retrying, and end every event subscription."""
        self._stop.set()
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        self.hub.close()

    async def settled(self) -> None:
        """Wait until the registry change being handled (if any) is fully applied."""
        async with self._lock:
            return

    async def refresh(self, persona: str) -> None:
        """Re-read one persona's checkpoints now (not waiting for the watcher) and settle it."""
        async with self._lock:
            await self._refresh({persona})

    def subscribe(self) -> Subscription:
        """Adapter events from now on (loaded, failed, activated, unloaded)."""
        return self.hub.subscribe()

    # ----------------------------------------------------------------- resolution

    def resolve(self, ref: ModelRef) -> AdapterRef | None:
        """The adapter a model id runs with; None for a persona without checkpoints."""
        if ref.run is None and ref.persona in self._loras:
            return self._adapter_ref(self._loras[ref.persona])
        self._require_persona(ref.persona)
        if ref.run is None:
            slot = self._slots.get(ref.persona)
            return self._adapter_ref(slot.active) if slot and slot.active else None
        ckpt = self.index.find(ref.persona, ref.run, ref.step)
        reason = self.index.refusal(ckpt.manifest.key)
        if reason is not None:
            raise AdapterRefusedError(f"{ref} cannot be loaded: {reason}")
        return self._adapter_ref(ckpt)

    def model_ids(self) -> list[str]:
        """Every pinned model id that exists, plus the names given through load_lora_adapter."""
        ids: list[str] = []
        for persona in self.personas():
            ids += pinned_ids(self.registry, persona, self.index.usable(persona))
        return ids + sorted(self._loras)

    def active_version(self, persona: str) -> str | None:
        """The version bare `persona` runs with, or None for the base model."""
        if persona in self._loras:
            return self._loras[persona].manifest.version
        slot = self._slots.get(persona)
        return slot.active.manifest.version if slot and slot.active else None

    def state(self, persona: str) -> PersonaAdapters:
        """The admin API's view of one persona."""
        self._require_persona(persona)
        slot = self._slots.get(persona) or PersonaSlot()
        return describe(
            self.registry,
            persona,
            slot.mode,
            slot.active.manifest.version if slot.active else None,
            self.engine.loaded_adapters(),
            slot.last_error,
            self.index.checkpoints(persona),
        )

    def states(self) -> list[PersonaAdapters]:
        """The admin API's view of every configured persona."""
        return [self.state(p) for p in sorted(set(self.personas()))]

    # ----------------------------------------------------------------- pin / follow

    async def activate(self, persona: str, run: str, step: int | None = None) -> PersonaAdapters:
        """Pin a persona to a checkpoint (a run's latest when `step` is None)."""
        self._require_persona(persona)
        async with self._lock:
            await self.index.rescan(persona)
            ckpt = self.index.find(persona, run, step)
            reason = await self._load(persona, ckpt)
            if reason is not None:
                raise AdapterRefusedError(
                    f"{persona}@{ckpt.manifest.version} cannot be loaded: {reason}"
                )
            slot = self._slots.setdefault(persona, PersonaSlot())
            slot.mode, slot.pin, slot.active = "pinned", Pin(run, ckpt.manifest.step), ckpt
            await self._write_pins()
            self._emit("activated", persona, ckpt.manifest.version, "pinned")
        return self.state(persona)

    async def follow(self, persona: str) -> PersonaAdapters:
        """Let a persona follow its newest checkpoint that loads again."""
        self._require_persona(persona)
        async with self._lock:
            slot = self._slots.setdefault(persona, PersonaSlot())
            slot.mode, slot.pin = "follow", None
            await self._write_pins()
            await self.index.rescan(persona)
            # Asking to follow again retries what the engine refused.
            self.index.forgive_engine_refusals(persona)
            await self._settle(persona, announce=False)
            version = slot.active.manifest.version if slot.active else None
            self._emit("activated", persona, version, "following the newest checkpoint")
        return self.state(persona)

    # ----------------------------------------------------------------- vLLM names

    def check_lora_name(self, name: str) -> None:
        """Refuse a LoRA name that is not a safe, unused model id without a version."""
        if "@" in name or parse_model_id(name).run is not None:
            raise RegistryError(f"the LoRA name {quote(name)} must not contain '@'")
        if name in self._loras or name in set(self.personas()) or name == self.engine.model_id:
            raise RegistryError(f"the model name {quote(name)} is already in use")

    async def load_lora(self, name: str, lora_path: str) -> Checkpoint:
        """Register `name` as a model id served by the checkpoint folder at `lora_path`."""
        self.check_lora_name(name)
        ckpt = self.registry.checkpoint_at(lora_path)
        async with self._lock:
            self.check_lora_name(name)
            reason = await self._load(ckpt.manifest.persona, ckpt)
            if reason is not None:
                raise AdapterRefusedError(f"{lora_path} cannot be loaded: {reason}")
            self._loras[name] = ckpt
        self._emit("loaded", name, ckpt.manifest.version, f"loaded from {ckpt.path.name}")
        return ckpt

    async def unload_lora(self, name: str) -> None:
        """Forget a name registered by `load_lora` and release its weights if nothing uses them."""
        ckpt = self._loras.pop(name, None)
        if ckpt is None:
            raise AdapterNotFoundError(f"no LoRA adapter named {quote(name)} is loaded")
        in_use = {s.active.manifest.key for s in self._slots.values() if s.active}
        in_use |= {c.manifest.key for c in self._loras.values()}
        if ckpt.manifest.key not in in_use:
            try:
                await self.engine.unload_adapter(ckpt.manifest.key)
            except Exception:
                log.exception("unloading %s failed", ckpt.manifest.key)
        self._emit("unloaded", name, ckpt.manifest.version, "unloaded")

    # ----------------------------------------------------------------- internals

    def _require_persona(self, persona: str) -> None:
        if not SAFE_NAME.fullmatch(persona):
            raise RegistryError(f"invalid persona name {persona!r}")
        if persona not in set(self.personas()):
            raise AdapterNotFoundError(f"unknown persona {persona!r}")

    async def _on_change(self, personas: set[str] | None) -> None:
        async with self._lock:
            await self._refresh(personas)

    async def _refresh(self, personas: set[str] | None) -> None:
        if personas is None:
            found = await asyncio.to_thread(self.registry.personas)
            personas = set(found) | self.index.personas() | set(self._slots)
        # Only configured personas take engine slots; others are indexed for when they appear.
        configured = set(self.personas())
        for persona in sorted(personas):
            try:
                await self.index.rescan(persona)
                if persona in configured:
                    await self._settle(persona, announce=True)
            except Exception as exc:
                log.exception("refreshing adapters of %s failed", persona)
                self._record(persona, None, f"refresh failed: {exc}")

    async def _settle(self, persona: str, *, announce: bool) -> None:
        slot = self._slots.setdefault(persona, PersonaSlot())
        ckpts = self.index.checkpoints(persona)
        if slot.mode == "pinned" and slot.pin is not None:
            pinned = [
                c
                for c in ckpts
                if (c.manifest.run, c.manifest.step) == (slot.pin.run, slot.pin.step)
            ]
            if slot.active is not None and slot.active.manifest.key in {
                c.manifest.key for c in pinned
            }:
                return
            if pinned and await self._load(persona, pinned[0]) is None:
                slot.active = pinned[0]
                return
            if pinned and not self.index.is_failed(pinned[0].manifest.key):
                return  # refused only for busy slots: the pin holds and loads on the retry
            if not pinned:
                self._record(
                    persona,
                    f"{slot.pin.run}:{slot.pin.step}",
                    "the pinned checkpoint is gone; following the newest",
                )
            slot.mode, slot.pin = "follow", None
        current = slot.active.manifest.key if slot.active else None
        for ckpt in reversed(ckpts):
            key = ckpt.manifest.key
            if key == current:
                return
            if self.index.is_failed(key):
                continue
            if await self._load(persona, ckpt) is None:
                slot.active = ckpt
                if announce:
                    self._emit("loaded", persona, ckpt.manifest.version, "now serving")
                return
            if not self.index.is_failed(key):
                return  # busy, not broken: keep serving what is active until the retry
        if slot.active is not None:
            slot.active = None
            self._emit("activated", persona, None, "no loadable checkpoint; serving the base model")

    async def _load(self, persona: str, ckpt: Checkpoint) -> str | None:
        """Check and load one checkpoint; on failure record, log and announce the reason."""
        key = ckpt.manifest.key
        reason = await self.index.problem(ckpt)
        if reason is None:
            try:
                await self.engine.load_adapter(self._adapter_ref(ckpt))
            except AdapterBusy as exc:
                self._retry_later(persona)
                self._emit("failed", persona, ckpt.manifest.version, f"{exc.reason}; retrying")
                return exc.reason
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        version = ckpt.manifest.version
        if reason is None:
            self.index.mark_loaded(key)
            return None
        self.index.mark_failed(key, reason)
        log.warning("adapter %s@%s refused: %s", persona, version, reason)
        self._record(persona, version, reason)
        self._emit("failed", persona, version, reason)
        return reason

    def _retry_later(self, persona: str) -> None:
        """Settle `persona` again soon, once (the slots free up as requests finish)."""
        if persona in self._retries or self._stop.is_set():
            return

        async def retry() -> None:
            await asyncio.sleep(BUSY_RETRY_SECONDS)
            del self._retries[persona]
            await self._on_change({persona})

        self._retries[persona] = asyncio.create_task(retry(), name=f"adapter-retry-{persona}")

    def _record(self, persona: str, version: str | None, message: str) -> None:
        slot = self._slots.setdefault(persona, PersonaSlot())
        slot.last_error = LoadError(version, message, time.time())

    def _emit(self, kind: EventType, persona: str, version: str | None, message: str) -> None:
        self.hub.publish(AdapterEvent(kind, persona, version, message, time.time()))

    @staticmethod
    def _adapter_ref(ckpt: Checkpoint) -> AdapterRef:
        return AdapterRef(ckpt.manifest, ckpt.path)

    async def _write_pins(self) -> None:
        pins = {p: s.pin for p, s in sorted(self._slots.items()) if s.mode == "pinned" and s.pin}
        await asyncio.to_thread(write_pins, self.pins_path, pins)
