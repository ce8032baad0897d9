"""Load a base model for training and make the chosen part of it trainable.

LoRA and DoRA use mlx-lm's own layers (`linear_to_lora_layers`), so a checkpoint is exactly what
`mlx_lm.tuner.utils.load_adapters` and the server expect. Float32 on CPU (the fastest dtype
there), bfloat16 on an Apple GPU; adapter weights always train in float32.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.tuner.utils import linear_to_lora_layers
from mlx_lm.utils import _download, load_model
from mlx_lm.utils import load_tokenizer as mlx_load_tokenizer

from adapters.base import EMBEDDED, EMBEDDED_ID, content_hash, resolve_model
from adapters.manifest import LoraParams
from data.card import Training


@dataclass(frozen=True)
class BaseModel:
    """A loaded base model and its identity."""

    model: nn.Module
    tokenizer: Any
    """mlx-lm's TokenizerWrapper."""
    path: Path
    model_id: str
    """`gemma-3-270m` for the embedded model, else the folder name or repo id."""
    base_hash: str
    stop_ids: frozenset[int]


def model_path(name: str) -> tuple[Path, str]:
    """The local folder of a base model and its id, preparing the embedded one if needed."""
    resolved = resolve_model(name)
    path = resolved if isinstance(resolved, Path) else _download(resolved)
    if name in (EMBEDDED, EMBEDDED_ID):
        return path, EMBEDDED_ID
    return path, Path(name).expanduser().name if isinstance(resolved, Path) else name


@functools.lru_cache(maxsize=2)
def load_tokenizer(path: Path) -> Any:
    """The tokenizer alone, with the config's stop ids; cached, since a 262k vocabulary is slow."""
    config = json.loads((path / "config.json").read_text())
    return mlx_load_tokenizer(path, eos_token_ids=config.get("eos_token_id"))


def load_base(name: str) -> BaseModel:
    """Load a base model in the training dtype for this device."""
    path, model_id = model_path(name)
    tokenizer = load_tokenizer(path)
    model, _config = load_model(path)
    if mx.default_device() == mx.gpu:
        model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    stops = set(tokenizer.eos_token_ids or ())
    return BaseModel(model, tokenizer, path, model_id, content_hash(path), frozenset(stops))


def lora_params(training: Training, model: nn.Module) -> LoraParams:
    """The manifest's description of the adapter this training produces."""
    layers = len(model.layers) if training.layers < 0 else min(training.layers, len(model.layers))
    return LoraParams(
        rank=training.rank,
        scale=training.scale,
        dropout=training.dropout,
        num_layers=layers,
        keys=list(training.keys) if training.keys is not None else None,
        fine_tune_type=training.fine_tune_type,
    )


def make_trainable(model: nn.Module, training: Training) -> None:
    """Freeze the base and add (or unfreeze) what the fine-tune type trains."""
    if training.layers > len(model.layers):
        raise ValueError(
            f"layers = {training.layers}, but the model has only {len(model.layers)} blocks"
        )
    model.freeze()
    if training.fine_tune_type == "full":
        count = len(model.layers) if training.layers < 0 else training.layers
        for layer in model.layers[-count:]:
            layer.unfreeze()
        if training.grad_checkpoint:
            checkpoint_blocks(model)
        return
    config: dict[str, Any] = {
        "rank": training.rank,
        "scale": training.scale,
        "dropout": training.dropout,
    }
    if training.keys is not None:
        config["keys"] = list(training.keys)
    linear_to_lora_layers(
        model, training.layers, config, use_dora=training.fine_tune_type == "dora"
    )
    if training.grad_checkpoint:
        checkpoint_blocks(model)
    # LoRA factors inherit the base dtype; train them in float32 even over a bf16 base.
    params = [(k, v.astype(mx.float32)) for k, v in tree_flatten(model.trainable_parameters())]
    model.load_weights(params, strict=False)


def checkpoint_blocks(model: nn.Module) -> None:
    """Recompute each trainable block's activations in the backward pass instead of keeping them.

    Only these blocks' instances change class (to a subclass whose call is wrapped in
    `mx.checkpoint`), so parameter names, other models and other blocks are untouched.
    """
    for layer in model.layers:
        if not tree_flatten(layer.trainable_parameters()):
            continue
        block = type(layer)

        def call(self: nn.Module, *args: Any, _block: type = block, **kwargs: Any) -> Any:
            def run(params: Any, *inner: Any, **named: Any) -> Any:
                self.update(params)
                return _block.__call__(self, *inner, **named)

            return mx.checkpoint(run)(self.trainable_parameters(), *args, **kwargs)

        layer.__class__ = type(f"Checkpointed{block.__name__}", (block,), {"__call__": call})


def adapter_config(lora: LoraParams, base_model: str, model_id: str) -> bytes:
    """`adapter_config.json` in mlx-lm's format, so mlx-lm tools load a checkpoint folder."""
    parameters: dict[str, Any] = {
        "rank": lora.rank,
        "scale": lora.scale,
        "dropout": lora.dropout,
    }
    if lora.keys is not None:
        parameters["keys"] = lora.keys
    config = {
        "fine_tune_type": lora.fine_tune_type,
        "num_layers": lora.num_layers,
        "lora_parameters": parameters,
        "model": base_model,
        "base_model_id": model_id,
    }
    return json.dumps(config, indent=2).encode()


def trainable_weights(model: nn.Module) -> dict[str, mx.array]:
    """The weights a checkpoint stores: adapter factors, or the unfrozen blocks."""
    return dict(tree_flatten(model.trainable_parameters()))
