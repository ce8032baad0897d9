"""Read an mlx-lm LoRA/DoRA checkpoint as per-module factors in PEFT's orientation.

mlx-lm computes `y = W x + scale * (x @ lora_a) @ lora_b` with `lora_a` of shape (in, r) and
`lora_b` (r, out). PEFT (and llama.cpp) compute `W x + (alpha / r) * B (A x)` with `A` (r, in) and
`B` (out, r). So `A = lora_a.T`, `B = lora_b.T` and `alpha = scale * r`. A square factor that is
not transposed has the right shape and the wrong values, which is why the export test checks
outputs, not shapes.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .source import ExportError, ExportSource

LEAF = re.compile(r"model\.layers\.([0-9]{1,4})\.(.+)\.(lora_a|lora_b|m)")


@dataclass(frozen=True, eq=False)
class LoraModule:
    """One adapted linear layer in PEFT's orientation."""

    layer: int
    key: str
    """The module inside the block, e.g. `self_attn.q_proj`."""
    a: np.ndarray
    """float32 (r, in): PEFT's `lora_A.weight`."""
    b: np.ndarray
    """float32 (out, r): PEFT's `lora_B.weight`."""
    magnitude: np.ndarray | None = None
    """float32 (out,): DoRA's learned row norms, PEFT's `lora_magnitude_vector`."""


def read_lora(source: ExportSource) -> list[LoraModule]:
    """Every adapted module of the checkpoint, checked against the base model's shapes."""
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(source.weights_path))
    except Exception as exc:  # safetensors raises its own error types for a bad file
        raise ExportError(f"cannot read {source.weights_path.name}: {exc}") from None
    parts: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    problems = []
    for name, array in tensors.items():
        match = LEAF.fullmatch(name)
        if match is None:
            problems.append(f"{name}: not a LoRA factor of a transformer block")
            continue
        layer, key, leaf = int(match.group(1)), match.group(2), match.group(3)
        parts.setdefault((layer, key), {})[leaf] = array.astype(np.float32)
    shapes = base_shapes(source.base_path)
    modules = []
    for (layer, key), leaves in sorted(parts.items()):
        where = f"model.layers.{layer}.{key}"
        if "lora_a" not in leaves or "lora_b" not in leaves:
            problems.append(f"{where}: lora_a or lora_b is missing")
            continue
        lora_a, lora_b = leaves["lora_a"], leaves["lora_b"]
        base = shapes.get(f"{where}.weight")
        out_in = (lora_b.shape[1], lora_a.shape[0])
        if base is None or tuple(base) != out_in or lora_a.shape[1] != lora_b.shape[0]:
            problems.append(
                f"{where}: factors {lora_a.shape} and {lora_b.shape} do not fit the base "
                f"weight {base}"
            )
            continue
        magnitude = leaves.get("m")
        modules.append(LoraModule(layer, key, lora_a.T.copy(), lora_b.T.copy(), magnitude))
    if problems:
        raise ExportError("the checkpoint does not fit its base model:\n  " + "\n  ".join(problems))
    if not modules:
        raise ExportError(f"{source.model_id} holds no LoRA factors")
    return modules


def base_shapes(base_path: Path) -> dict[str, list[int]]:
    """Tensor shapes of an MLX/HF model folder, read from the safetensors headers alone."""
    shapes: dict[str, list[int]] = {}
    for file in sorted(base_path.glob("*.safetensors")):
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, info in header.items():
            if name != "__metadata__":
                shapes[name] = info["shape"]
    return shapes
