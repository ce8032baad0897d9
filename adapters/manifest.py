"""Adapter identity: one manifest per published checkpoint, shared by every part of the product.

The trainer writes it last (atomically) into `checkpoints/<step>/manifest.json`; the server's
watcher reacts only to manifests, the registry lists them, and the engine keys its caches on
`(persona, run, step, weights_sha256)`, never on a path.
"""

from __future__ import annotations

import msgspec

MANIFEST = "manifest.json"
WEIGHTS = "adapters.safetensors"
CONFIG = "adapter_config.json"
MAX_RANK = 256
"""The highest LoRA rank the engine serves."""


class LoraParams(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The shape of an adapter: what it adapts and how."""

    rank: int
    scale: float
    dropout: float = 0.0
    num_layers: int = 8
    keys: list[str] | None = None
    fine_tune_type: str = "lora"


class Manifest(msgspec.Struct, frozen=True, omit_defaults=True):
    """One complete, published checkpoint of one training run."""

    persona: str
    run: str
    step: int
    base_model: str
    """The base model id as the card names it (`embedded`, a path or a hub id)."""
    base_hash: str
    """Content hash of the base model folder; a mismatch refuses the adapter."""
    lora: LoraParams
    weights_sha256: str
    created: float
    epoch: float = 0.0
    metrics: dict[str, float] = {}
    """train_loss, val_loss, and eval scores as they arrive."""
    status: str = "complete"

    @property
    def version(self) -> str:
        """`run:step`, the part of a pinned model id after `@`."""
        return f"{self.run}:{self.step}"

    @property
    def key(self) -> str:
        """Cache identity: persona, version and content hash."""
        return f"{self.persona}@{self.version}#{self.weights_sha256[:12]}"


def decode_manifest(payload: bytes) -> Manifest:
    """Decode a manifest, raising msgspec errors that name the bad field."""
    return msgspec.json.decode(payload, type=Manifest)


def encode_manifest(manifest: Manifest) -> bytes:
    """Encode a manifest as indented JSON."""
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2)
