"""Publish a checkpoint: resume state first, then weights, config and the manifest last.

`adapters.registry.publish_checkpoint` writes the weights under a temporary name, renames them,
and writes the manifest last, so the server's watcher (which reacts only to manifests) never sees
half a checkpoint, and a checkpoint with a manifest always has its resume state beside it.
"""

from __future__ import annotations

import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from adapters.manifest import LoraParams, Manifest
from adapters.registry import publish_checkpoint, step_dirname

from .model import trainable_weights
from .state import TrainerState, save_state


def publish(
    run_dir: Path,
    manifest: Manifest,
    model: nn.Module,
    optimizer: optim.Optimizer,
    state: TrainerState,
    config: bytes,
) -> Path:
    """Write the checkpoint for `manifest.step` and return its folder."""
    folder = run_dir / "checkpoints" / step_dirname(manifest.step)
    save_state(folder, state, optimizer)
    weights = trainable_weights(model)

    def write(path: Path) -> None:
        mx.save_safetensors(str(path), weights, metadata={"format": "mlx"})

    return publish_checkpoint(run_dir, manifest, write, config)


def manifest_for(
    *,
    persona: str,
    run: str,
    step: int,
    epoch: float,
    base_model: str,
    base_hash: str,
    lora: LoraParams,
    metrics: dict[str, float],
) -> Manifest:
    """A manifest for a checkpoint about to be published (the weights hash is filled in then)."""
    return Manifest(
        persona=persona,
        run=run,
        step=step,
        base_model=base_model,
        base_hash=base_hash,
        lora=lora,
        weights_sha256="",
        created=time.time(),
        epoch=round(epoch, 4),
        metrics=metrics,
    )
