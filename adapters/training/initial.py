"""`persona train --from MODEL_ID`: start a run from a published checkpoint instead of the base.

The checkpoint decides the adapter's shape (fine-tune type, rank, scale, layers, keys): a run that
continues it must have the same one, so those settings come from its manifest, and an override
that contradicts them is refused. For DPO the same weights, frozen, are the reference model.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from adapters.registry import (
    Checkpoint,
    Registry,
    RegistryError,
    parse_model_id,
    sha256_file,
)

from .config import ConfigError, RunConfig

SHAPE = ("fine_tune_type", "rank", "scale", "layers", "keys")
"""Training settings a checkpoint fixes."""


def checkpoint_shape(ckpt: Checkpoint) -> dict[str, object]:
    """The `[training]` settings a checkpoint fixes for a run that starts from it."""
    lora = ckpt.manifest.lora
    return {
        "fine_tune_type": lora.fine_tune_type,
        "rank": lora.rank,
        "scale": lora.scale,
        "layers": lora.num_layers,
        "keys": lora.keys,
    }


def shape_clashes(shape: dict[str, object], overrides: dict[str, object]) -> list[str]:
    """The overrides that contradict a checkpoint's shape, by `[training]` name."""
    return [k for k in SHAPE if k in overrides and overrides[k] != shape[k]]


def with_init(
    config: RunConfig, registry: Registry, model_id: str | None, overrides: dict[str, object]
) -> RunConfig:
    """The config with `init_from` resolved to a checkpoint and the adapter shape taken from it.

    Raises ConfigError when DPO has no starting checkpoint or an override contradicts it.
    """
    t = config.training
    if model_id is None:
        if t.method == "dpo":
            raise ConfigError(
                "DPO starts from a trained checkpoint, whose frozen weights are its reference "
                f"model: add --from {config.persona}@run-N:best"
            )
        return config
    try:
        ckpt = registry.resolve(parse_model_id(model_id))
    except RegistryError as exc:
        raise ConfigError(f"--from {model_id}: {exc}") from None
    if ckpt is None:
        raise ConfigError(f"--from {model_id}: no checkpoint found")
    shape = checkpoint_shape(ckpt)
    clashes = shape_clashes(shape, overrides)
    if clashes:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in clashes)
        raise ConfigError(f"{names} differ from the checkpoint --from {model_id} continues")
    m = ckpt.manifest
    return msgspec.structs.replace(
        config,
        training=msgspec.structs.replace(t, **shape),  # type: ignore[arg-type]
        init_from=f"{m.persona}@{m.run}:{m.step}",
        init_sha256=m.weights_sha256,
    )


def check_start(config: RunConfig, registry: Registry) -> None:
    """Refuse a run whose adapter shape differs from its starting checkpoint's, naming the
    settings, before any data or weights load."""
    try:
        ckpt = registry.resolve(parse_model_id(config.init_from or ""))
    except RegistryError as exc:
        raise ConfigError(f"init_from {config.init_from}: {exc}") from None
    if ckpt is None:
        raise ConfigError(f"init_from {config.init_from}: no checkpoint found")
    t = config.training
    shape = checkpoint_shape(ckpt)
    clashes = [k for k in SHAPE if getattr(t, k) != shape[k]]
    if clashes:
        verb = "differs" if len(clashes) == 1 else "differ"
        raise ConfigError(
            f"training.{', training.'.join(clashes)} {verb} from the starting checkpoint "
            f"{config.init_from}"
        )


def init_checkpoint(config: RunConfig, registry: Registry, base_hash: str) -> Path | None:
    """The folder of the run's starting checkpoint, checked against what the run recorded."""
    if config.init_from is None:
        return None
    try:
        ckpt = registry.resolve(parse_model_id(config.init_from))
    except RegistryError as exc:
        raise ConfigError(f"the starting checkpoint {config.init_from}: {exc}") from None
    if ckpt is None:
        raise ConfigError(f"the starting checkpoint {config.init_from} is gone")
    if ckpt.manifest.base_hash != base_hash:
        raise ConfigError(f"{config.init_from} was trained on another base model")
    weights = ckpt.path / "adapters.safetensors"
    if config.init_sha256 and sha256_file(weights) != config.init_sha256:
        raise ConfigError(f"the weights of {config.init_from} changed since the run started")
    return ckpt.path
