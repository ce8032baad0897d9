"""What an export starts from: a served model id, resolved to its checkpoint and its context.

The model id is any id the server answers to (`juni`, `juni@run-3`, `juni@run-3:200`,
`juni@run-3:best`). On the embedded base the shipped sample adapters are seeded into the registry
first, exactly as `persona serve` does, so `persona export juni` works on a fresh home too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from adapters.base import EMBEDDED, EMBEDDED_ID, content_hash, resolve_model
from adapters.manifest import WEIGHTS, LoraParams, Manifest
from adapters.registry import Checkpoint, Registry, RegistryError, parse_model_id
from adapters.training.record import RUN_FILE, RunRecord
from data.card import PersonaCard
from data.personas import PersonaEntry

EMBEDDED_HUB_ID = "google/gemma-3-270m"
"""The Hugging Face model the embedded GGUF was converted from (llama.cpp's conversion)."""


class ExportError(Exception):
    """An export that cannot be made, or could not be faithful; the message says why."""


@dataclass(frozen=True)
class ExportOptions:
    """Choices a user makes on the command line."""

    quant: str = "f16"
    """Tensor type of a fused GGUF: `f16` or `q8_0`."""
    model: str | None = None
    """The base model to export against; default: the one the checkpoint was trained on."""


@dataclass(frozen=True)
class ExportSource:
    """One checkpoint with its run record, persona card and base model, ready to convert."""

    model_id: str
    """The pinned id of the checkpoint, `persona@run:step`."""
    checkpoint: Checkpoint
    base_path: Path
    """The MLX folder of the base model (config.json, model.safetensors, tokenizer)."""
    base_name: str
    """A name other tools know the base by: a hub id, else the folder name."""
    embedded: bool
    """Whether the base is the embedded Gemma 3 270M (whose GGUF ships with the package)."""
    record: RunRecord | None = None
    eval: dict[str, float] = field(default_factory=dict)
    """The checkpoint's latest eval summary from `run.json`, if `persona eval` stored one."""
    card: PersonaCard | None = None
    card_folder: Path | None = None
    """The persona's folder (its persona.toml), when the persona was found."""

    @property
    def manifest(self) -> Manifest:
        """The checkpoint's manifest."""
        return self.checkpoint.manifest

    @property
    def lora(self) -> LoraParams:
        """How the checkpoint adapts the base."""
        return self.checkpoint.manifest.lora

    @property
    def weights_path(self) -> Path:
        """The checkpoint's `adapters.safetensors`."""
        return self.checkpoint.path / WEIGHTS

    def base_config(self) -> dict[str, Any]:
        """The base model's `config.json`."""
        config: dict[str, Any] = json.loads((self.base_path / "config.json").read_text())
        return config


def _nothing_to_export(persona: str, persona_dirs: tuple[Path, ...]) -> str:
    """Why a persona without checkpoints cannot be exported: unknown, or not trained yet."""
    from data.personas import PersonaError, resolve

    try:
        resolve(persona, persona_dirs)
    except PersonaError as exc:
        return f"{exc}; `persona list` shows them"
    return f"{persona} has no trained checkpoint to export; train it first: persona train {persona}"


def resolve_source(
    model_id: str,
    options: ExportOptions,
    adapters: Path | None = None,
    persona_dirs: tuple[Path, ...] = (),
) -> ExportSource:
    """Resolve a model id to an ExportSource; raise ExportError when it names nothing exportable."""
    from data.home import adapters_dir

    root = adapters or adapters_dir()
    try:
        ref = parse_model_id(model_id)
    except RegistryError as exc:
        raise ExportError(str(exc)) from None
    base_name = options.model or EMBEDDED
    if base_name in (EMBEDDED, EMBEDDED_ID):
        from adapters.sample_adapters import install_sample_adapters

        install_sample_adapters(root)
    registry = Registry(root)
    try:
        ckpt = registry.resolve(ref)
    except RegistryError as exc:
        raise ExportError(str(exc)) from None
    if ckpt is None:
        raise ExportError(_nothing_to_export(ref.persona, persona_dirs))
    manifest = ckpt.manifest
    base = options.model or manifest.base_model
    embedded = base in (EMBEDDED, EMBEDDED_ID)
    base_path = Path(resolve_model(base)) if embedded or Path(base).expanduser().exists() else None
    if base_path is None:
        raise ExportError(f"the base model {base!r} is not a local folder; pass --model PATH")
    actual = content_hash(base_path)
    if actual != manifest.base_hash:
        raise ExportError(
            f"{manifest.persona}@{manifest.version} was trained on base {manifest.base_hash!r}, "
            f"but {base} is {actual!r}; pass the base it was trained on with --model"
        )
    record, scores = _run_record(ckpt)
    entry = _persona(manifest.persona, persona_dirs)
    if embedded:
        name = EMBEDDED_HUB_ID
    elif base_path.name == Path(base).name:
        name = base_path.name
    else:
        name = base
    return ExportSource(
        model_id=f"{manifest.persona}@{manifest.version}",
        checkpoint=ckpt,
        base_path=base_path,
        base_name=name,
        embedded=embedded,
        record=record,
        eval=scores,
        card=entry.card if entry else None,
        card_folder=entry.folder if entry else None,
    )


def _run_record(ckpt: Checkpoint) -> tuple[RunRecord | None, dict[str, float]]:
    path = ckpt.path.parent.parent / RUN_FILE
    try:
        raw = path.read_bytes()
    except OSError:
        return None, {}
    try:
        record = msgspec.json.decode(raw, type=RunRecord)
    except (msgspec.DecodeError, msgspec.ValidationError):
        record = None
    extra = msgspec.json.decode(raw)
    evals = extra.get("eval") if isinstance(extra, dict) else None
    scores = evals.get(str(ckpt.manifest.step)) if isinstance(evals, dict) else None
    if not isinstance(scores, dict):
        return record, {}
    return record, {k: float(v) for k, v in scores.items() if isinstance(v, int | float)}


def _persona(persona: str, dirs: tuple[Path, ...]) -> PersonaEntry | None:
    from data.personas import PersonaError, resolve

    try:
        return resolve(persona, dirs)
    except PersonaError:
        return None
