"""Test helper: publish LoRA or DoRA checkpoints of chosen shapes, and run `persona export`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import msgspec
import numpy as np

from adapters.base import content_hash
from adapters.manifest import CONFIG, MANIFEST, LoraParams, Manifest
from adapters.registry import Checkpoint, Registry, publish_checkpoint
from data.atomic import write_bytes
from studio import export_cli
from tests.adapter_files import lora_shapes


def publish_adapter(
    root: Path,
    persona: str,
    model_dir: Path,
    *,
    fine_tune_type: str = "lora",
    rank: int = 4,
    num_layers: int = 2,
    scale: float = 20.0,
    keys: tuple[str, ...] | None = None,
    seed: int = 0,
    std: float = 0.05,
) -> Checkpoint:
    """Publish one random checkpoint (a new run); DoRA adds magnitudes near the base row norms."""
    from safetensors.numpy import load_file, save_file

    from tests.adapter_files import DEFAULT_KEYS

    used = keys or DEFAULT_KEYS
    rng = np.random.default_rng(seed)
    arrays = {
        name: (rng.standard_normal(shape) * std).astype(np.float32)
        for name, shape in sorted(lora_shapes(model_dir, rank, num_layers, used).items())
    }
    if fine_tune_type == "dora":
        base = load_file(str(model_dir / "model.safetensors"))
        for name in [n for n in arrays if n.endswith(".lora_a")]:
            stem = name.removesuffix(".lora_a")
            norms = np.linalg.norm(base[f"{stem}.weight"].astype(np.float32), axis=1)
            arrays[f"{stem}.m"] = (norms * rng.uniform(0.8, 1.2, norms.shape)).astype(np.float32)
    registry = Registry(root)
    run, run_dir = registry.new_run(persona)
    lora = LoraParams(rank, scale, 0.0, num_layers, list(keys) if keys else None, fine_tune_type)
    parameters: dict[str, object] = {"rank": rank, "scale": scale, "dropout": 0.0}
    if keys:
        parameters["keys"] = list(keys)
    config = json.dumps(
        {"fine_tune_type": fine_tune_type, "num_layers": num_layers, "lora_parameters": parameters}
    ).encode()
    write_bytes(run_dir / CONFIG, config)
    manifest = Manifest(persona, run, 10, "embedded", content_hash(model_dir), lora, "", 1.0)
    folder = publish_checkpoint(
        run_dir, manifest, lambda path: save_file(arrays, str(path)), config
    )
    return Checkpoint(msgspec.json.decode((folder / MANIFEST).read_bytes(), type=Manifest), folder)


def export(argv: list[str]) -> int:
    """Run `persona export` in process."""
    parser = argparse.ArgumentParser()
    export_cli.configure(parser)
    return export_cli.run(parser.parse_args(argv))
