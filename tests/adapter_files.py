"""Test helper: publish random LoRA checkpoints, good and deliberately broken, into a registry.

Good checkpoints go through `publish_checkpoint` exactly as the trainer writes them. Broken ones
are written in the same order (weights, config, manifest last) so the watcher sees them complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec

from adapters.base import content_hash
from adapters.manifest import CONFIG, MANIFEST, WEIGHTS, LoraParams, Manifest, encode_manifest
from adapters.registry import Checkpoint, Registry, publish_checkpoint, sha256_file, step_dirname
from data.atomic import write_bytes

DEFAULT_KEYS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)
BAD_KINDS = (
    "truncated",
    "corrupt",
    "wrong_shape",
    "missing_config",
    "wrong_base",
    "sha_mismatch",
    "wrong_rank",
    "unknown_module",
    "not_complete",
    "garbage_config",
)
"""Every way `publish_bad` can break a checkpoint."""


def linear_dims(config: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(input, output) sizes of each gemma3_text linear layer inside one block."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    q = config["num_attention_heads"] * config["head_dim"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    return {
        "self_attn.q_proj": (hidden, q),
        "self_attn.k_proj": (hidden, kv),
        "self_attn.v_proj": (hidden, kv),
        "self_attn.o_proj": (q, hidden),
        "mlp.gate_proj": (hidden, inter),
        "mlp.up_proj": (hidden, inter),
        "mlp.down_proj": (inter, hidden),
    }


def lora_shapes(
    model_dir: Path, rank: int, num_layers: int, keys: tuple[str, ...] = DEFAULT_KEYS
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the LoRA tensors mlx-lm expects for the last `num_layers` blocks."""
    config = json.loads((model_dir / "config.json").read_text())
    dims = linear_dims(config)
    total = config["num_hidden_layers"]
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(total - num_layers, total):
        for key in keys:
            d_in, d_out = dims[key]
            shapes[f"model.layers.{layer}.{key}.lora_a"] = (d_in, rank)
            shapes[f"model.layers.{layer}.{key}.lora_b"] = (rank, d_out)
    return shapes


def write_weights(path: Path, shapes: dict[str, tuple[int, ...]], seed: int, std: float) -> None:
    """Random LoRA weights; lora_b is non-zero so the adapter really changes the output."""
    import mlx.core as mx

    keys = mx.random.split(mx.random.key(seed), max(len(shapes), 2))
    arrays = {}
    for i, (name, shape) in enumerate(sorted(shapes.items())):
        arrays[name] = mx.random.normal(shape, key=keys[i]) * std
    mx.save_safetensors(str(path), arrays)


def adapter_config(rank: int, num_layers: int, scale: float, keys: tuple[str, ...]) -> bytes:
    """mlx-lm's adapter_config.json for these settings."""
    return json.dumps(
        {
            "fine_tune_type": "lora",
            "num_layers": num_layers,
            "lora_parameters": {"rank": rank, "scale": scale, "dropout": 0.0, "keys": list(keys)},
        }
    ).encode()


def make_manifest(
    persona: str,
    run: str,
    step: int,
    base_hash: str,
    rank: int,
    num_layers: int,
    scale: float,
    keys: tuple[str, ...],
) -> Manifest:
    """A manifest for a checkpoint still to be published (weights_sha256 filled in later)."""
    lora = LoraParams(rank, scale, 0.0, num_layers, list(keys), "lora")
    return Manifest(persona, run, step, "embedded", base_hash, lora, "", time.time())


def publish_random(
    root: Path,
    persona: str,
    model_dir: Path,
    *,
    run: str | None = None,
    step: int = 100,
    rank: int = 4,
    num_layers: int = 2,
    scale: float = 20.0,
    seed: int = 0,
    std: float = 0.5,
    keys: tuple[str, ...] = DEFAULT_KEYS,
) -> Checkpoint:
    """Publish one valid random checkpoint (a new run unless `run` is given)."""
    registry = Registry(root)
    run_dir = registry.run_dir(persona, run) if run else registry.new_run(persona)[1]
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = make_manifest(
        persona, run_dir.name, step, content_hash(model_dir), rank, num_layers, scale, keys
    )
    shapes = lora_shapes(model_dir, rank, num_layers, keys)
    config = adapter_config(rank, num_layers, scale, keys)
    write_bytes(run_dir / CONFIG, config)
    folder = publish_checkpoint(
        run_dir, manifest, lambda path: write_weights(path, shapes, seed, std), config
    )
    return Checkpoint(msgspec.json.decode((folder / MANIFEST).read_bytes(), type=Manifest), folder)


def publish_bad(
    root: Path, persona: str, model_dir: Path, kind: str, *, run: str, step: int, seed: int = 0
) -> Path:
    """Publish a checkpoint broken in the way `kind` (one of BAD_KINDS) names; manifest last."""
    rank, num_layers, scale, keys = 4, 2, 20.0, DEFAULT_KEYS
    base_hash = "0" * 16 if kind == "wrong_base" else content_hash(model_dir)
    manifest = make_manifest(persona, run, step, base_hash, rank, num_layers, scale, keys)
    folder = Registry(root).run_dir(persona, run) / "checkpoints" / step_dirname(step)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS
    shapes = lora_shapes(model_dir, rank, num_layers, keys)
    if kind == "wrong_shape":
        shapes = {k: (v[0] + 3, v[1]) for k, v in shapes.items()}
    if kind == "wrong_rank":
        shapes = lora_shapes(model_dir, rank * 2, num_layers, keys)
    if kind == "unknown_module":
        shapes = {k.replace("q_proj", "z_proj"): v for k, v in shapes.items()}
    write_weights(weights, shapes, seed, 0.5)
    if kind == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    if kind == "corrupt":
        weights.write_bytes(b"\xff" * 64 + weights.read_bytes()[64:])
    digest = sha256_file(weights)
    if kind == "sha_mismatch":
        digest = "f" * 64
    if kind != "missing_config":
        config = adapter_config(rank, num_layers, scale, keys)
        write_bytes(folder / CONFIG, b"{not json" if kind == "garbage_config" else config)
    status = "training" if kind == "not_complete" else "complete"
    final = msgspec.structs.replace(manifest, weights_sha256=digest, status=status)
    write_bytes(folder / MANIFEST, encode_manifest(final))
    return folder
