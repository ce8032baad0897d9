"""The persona catalog: which personas exist, what a model id names, and each request's defaults.

Sampling defaults merge field by field: a field the request sets wins, then the persona card's
`[sampling]`, then the base model's `generation_config.json`, then the server's defaults. An
omitted field never overwrites a default with a constant (the bug of ollama#17744).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from adapters.registry import ModelRef, RegistryError, parse_model_id
from data.card import PersonaCard, Sampling
from data.home import personas_dir
from data.personas import (
    CARD,
    EVAL,
    PREFERENCE,
    TRAIN_FILES,
    VALID,
    PersonaEntry,
    discover,
    sample_personas_dir,
)
from data.problem import quote
from server.errors import ModelNotFoundError
from server.wire.openai import ResolvedSampling, SamplingFields, is_set

log = logging.getLogger("persona.server")

DATA_FILES = (*TRAIN_FILES, VALID, EVAL, PREFERENCE)
"""The files of a persona folder whose change reloads it."""
SAMPLING_FIELDS = tuple(f.name for f in msgspec.structs.fields(Sampling))


def server_defaults(max_tokens: int) -> ResolvedSampling:
    """The last layer: OpenAI's documented defaults and the server's completion length."""
    return ResolvedSampling(
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        repetition_penalty=1.0,
        repetition_context_size=20,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        min_tokens=0,
        max_tokens=max_tokens,
    )


def merge(layers: Sequence[Sampling], fallback: ResolvedSampling) -> ResolvedSampling:
    """Resolve every field from the first layer that sets it, else from `fallback`."""
    values: dict[str, Any] = {}
    for name in SAMPLING_FIELDS:
        value = next((v for layer in layers if (v := getattr(layer, name)) is not None), None)
        values[name] = getattr(fallback, name) if value is None else value
    values["stop"] = list(values["stop"] or [])
    return ResolvedSampling(**values)


def request_layer(request: SamplingFields, max_tokens: int | None = None) -> Sampling:
    """The sampling fields a request actually set; everything it left out stays None."""
    values: dict[str, Any] = {}
    for name in SAMPLING_FIELDS:
        value = getattr(request, name, None)
        if is_set(value):
            values[name] = value
    if "stop" in values and isinstance(values["stop"], str):
        values["stop"] = [values["stop"]]
    if values.get("top_k") == -1:
        values["top_k"] = 0
    if max_tokens is not None:
        values["max_tokens"] = max_tokens
    return Sampling(**values)


def generation_config_layer(model_dir: Path | None) -> Sampling:
    """Defaults from a base model folder's `generation_config.json` (empty when absent)."""
    if model_dir is None:
        return Sampling()
    path = model_dir / "generation_config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return Sampling()
    if not isinstance(config, dict):
        return Sampling()
    values: dict[str, Any] = {}
    for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty"):
        if isinstance(config.get(name), int | float) and not isinstance(config.get(name), bool):
            values[name] = config[name]
    if isinstance(config.get("max_new_tokens"), int):
        values["max_tokens"] = config["max_new_tokens"]
    # Transformers decodes greedily unless do_sample is on, whatever temperature says.
    if config.get("do_sample") is False:
        values["temperature"] = 0.0
    try:
        return msgspec.convert(values, Sampling)
    except msgspec.ValidationError:
        log.warning("ignoring unusable sampling defaults in %s", path)
        return Sampling()


@dataclass(frozen=True)
class RequestedModel:
    """What a request's `model` names: the base model, or a persona and maybe a pinned version."""

    model: str
    """The id as the client sent it; responses echo it."""
    persona: PersonaEntry | None
    ref: ModelRef | None


class Catalog:
    """The personas this server serves: found at start-up, then rescanned as folders change."""

    def __init__(
        self,
        entries: Sequence[PersonaEntry],
        problems: Sequence[str] = (),
        dirs: Sequence[Path] = (),
    ) -> None:
        self._entries = {e.name: e for e in entries}
        self.problems: tuple[str, ...] = tuple(problems)
        """Persona folders that could not be read, as messages."""
        self.dirs: tuple[Path, ...] = tuple(dirs)
        """The folders searched, in order (empty: a fixed catalog that `rescan` leaves alone)."""
        self.errors: dict[str, str] = {}
        """Per persona whose card stopped parsing: why; its last good version keeps serving."""
        self._marks = {e.name: data_mark(e) for e in entries}

    @classmethod
    def discover(cls, extra_dirs: Sequence[Path]) -> Catalog:
        """Find personas: the user's folder, then `extra_dirs`, then the samples."""
        dirs = [personas_dir(), *extra_dirs, sample_personas_dir()]
        entries, problems = discover(dirs)
        for problem in problems:
            log.warning("persona skipped: %s", problem)
        return cls(entries, [str(p) for p in problems], dirs)

    def rescan(self) -> list[PersonaChange]:
        """Find the personas again; what was added, changed, removed or broken, by name.

        A persona whose card no longer parses keeps its last good entry and gets an error; a
        persona whose folder is gone is removed.
        """
        if not self.dirs:
            return []
        entries, problems = discover(self.dirs)
        found = {e.name: e for e in entries}
        broken: dict[str, str] = {}
        for problem in problems:
            if problem.severity == "error" and Path(problem.file).name == CARD:
                broken.setdefault(Path(problem.file).parent.name, str(problem))
        changes: list[PersonaChange] = []
        for name, message in broken.items():
            if name in found:
                continue  # a later folder of the same name serves instead
            if name in self._entries:
                found[name] = self._entries[name]
            if self.errors.get(name) != message:
                changes.append(PersonaChange(name, "error", message))
        for name in sorted(set(self._entries) - set(found)):
            changes.append(PersonaChange(name, "removed", f"persona {name} was removed"))
        marks = {name: data_mark(entry) for name, entry in found.items()}
        for name in sorted(found):
            if name in broken:
                continue
            if name not in self._entries:
                changes.append(PersonaChange(name, "added", f"persona {name} was added"))
            elif marks[name] != self._marks.get(name) or name in self.errors:
                changes.append(PersonaChange(name, "changed", f"persona {name} was reloaded"))
        self._entries, self._marks = found, marks
        self.errors = {n: m for n, m in broken.items() if n in found}
        self.problems = tuple(str(p) for p in problems)
        return changes

    def personas(self) -> list[PersonaEntry]:
        """Every persona, by name."""
        return [self._entries[name] for name in sorted(self._entries)]

    def add(self, entry: PersonaEntry) -> None:
        """Serve a persona created while running (a fine-tuning job's new persona)."""
        self._entries[entry.name] = entry
        self._marks[entry.name] = data_mark(entry)

    def get(self, name: str) -> PersonaEntry | None:
        """One persona by name."""
        return self._entries.get(name)

    def requested_model(self, model: str, base_ids: Sequence[str]) -> RequestedModel:
        """Resolve a `model` field; raise ModelNotFoundError for anything not served here."""
        if model in base_ids:
            return RequestedModel(model, None, None)
        try:
            ref = parse_model_id(model)
        except RegistryError:
            ref = None
        entry = self._entries.get(ref.persona) if ref else None
        if ref is None or entry is None:
            raise ModelNotFoundError(
                f"The model {quote(model)} does not exist. "
                "GET /v1/models lists the models served here.",
                param="model",
            )
        return RequestedModel(model, entry, ref)


@dataclass(frozen=True)
class PersonaChange:
    """One persona that a rescan found added, changed, removed, or with a card that broke."""

    persona: str
    kind: Literal["added", "changed", "removed", "error"]
    message: str


def data_mark(entry: PersonaEntry) -> tuple[object, ...]:
    """What a persona is now: its card and each data file's size and modification time."""
    stamps: list[tuple[str, int, int]] = []
    for name in (CARD, *DATA_FILES):
        try:
            st = (entry.folder / name).stat()
        except OSError:
            continue
        stamps.append((name, st.st_size, st.st_mtime_ns))
    return (entry.folder, entry.card, tuple(stamps))


def card_layer(card: PersonaCard | None) -> Sampling:
    """A persona card's sampling layer (empty for the base model)."""
    return card.sampling if card is not None else Sampling()
