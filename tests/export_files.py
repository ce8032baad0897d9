"""Test helper: publish LoRA or DoRA checkpoints of chosen shapes, and run `persona export`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import msgspec
import numpy as np
from adapter_files import lora_shapes

from adapters.base import content_hash
from adapters.manifest import CONFIG, MANIFEST, LoraParams, Manifest
from adapters.registry import Checkpoint, Registry, publish_checkpoint
from data.atomic import write_bytes
from studio import export_cli


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
    from adapter_files import DEFAULT_KEYS
    from safetensors.numpy import load_file, save_file

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


def peft_forward(
    x: np.ndarray, weight: np.ndarray, tensors: dict[str, np.ndarray], prefix: str, config: dict
) -> np.ndarray:
    """PEFT's LoRA/DoRA Linear forward in float64, from the exported file alone."""
    a = tensors[f"{prefix}.lora_A.weight"].astype(np.float64)
    b = tensors[f"{prefix}.lora_B.weight"].astype(np.float64)
    scaling = config["lora_alpha"] / config["r"]
    w = weight.astype(np.float64)
    y = x @ w.T + scaling * (x @ a.T) @ b.T
    if config["use_dora"]:
        magnitude = tensors[f"{prefix}.lora_magnitude_vector"].astype(np.float64)
        norm = np.linalg.norm(w + scaling * b @ a, axis=1)
        y = y * (magnitude / norm)
    return y


def mlx_outputs(model_dir: Path, checkpoint: Path, x_by_name: dict[str, np.ndarray]) -> dict:
    """Each adapted module's output in mlx-lm, with the checkpoint loaded by mlx-lm itself."""
    import mlx.core as mx
    from mlx_lm.tuner.utils import load_adapters
    from mlx_lm.utils import load_model

    model, _ = load_model(model_dir)
    load_adapters(model, str(checkpoint))
    modules = dict(model.named_modules())
    return {
        name: np.array(modules[name](mx.array(x.astype(np.float32))), dtype=np.float64)
        for name, x in x_by_name.items()
    }


def export(argv: list[str]) -> int:
    """Run `persona export` in process."""
    parser = argparse.ArgumentParser()
    export_cli.configure(parser)
    return export_cli.run(parser.parse_args(argv))
