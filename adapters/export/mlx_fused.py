"""`--to mlx`: the adapter fused into the base weights, as a plain MLX model folder.

The merge is mlx-lm's own: the checkpoint is loaded with `mlx_lm.load(..., adapter_path=...)`
and every LoRA/DoRA layer is replaced by its `fuse()` result, as `mlx_lm.fuse` does. The folder
holds config, weights, tokenizer with the Gemma 3 chat template, and a `generation_config.json`
carrying the persona's sampling defaults (which Transformers and vLLM read).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from data.atomic import write_text

from .readme import model_card
from .source import ExportOptions, ExportSource

GENERATION_KEYS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "repetition_penalty": "repetition_penalty",
    "max_tokens": "max_new_tokens",
}
"""Card `[sampling]` key -> Hugging Face `generation_config.json` key."""


def refusal(source: ExportSource) -> str | None:
    """Every checkpoint can be fused."""
    return None


def fused_model(source: ExportSource) -> tuple[Any, dict[str, Any]]:
    """The base model with the checkpoint merged in by mlx-lm's `fuse()`: (model, config)."""
    from mlx.utils import tree_unflatten
    from mlx_lm.tuner.utils import load_adapters
    from mlx_lm.utils import load_model

    model, config = load_model(source.base_path)
    load_adapters(model, str(source.checkpoint.path))
    fused = [
        (name, layer.fuse()) for name, layer in model.named_modules() if hasattr(layer, "fuse")
    ]
    if fused:
        model.update_modules(tree_unflatten(fused))
    return model, config


def generation_config(source: ExportSource) -> dict[str, Any]:
    """The base's generation config with the persona's sampling defaults added."""
    path = source.base_path / "generation_config.json"
    config: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    sampling = msgspec.to_builtins(source.card.sampling) if source.card else {}
    for key, hf_key in GENERATION_KEYS.items():
        if key in sampling:
            config[hf_key] = sampling[key]
    if "temperature" in sampling:
        config["do_sample"] = sampling["temperature"] > 0
    return config


def write(source: ExportSource, folder: Path, options: ExportOptions) -> None:
    """Fuse and save the model folder, then the model card."""
    from mlx_lm.utils import load_tokenizer, save

    model, config = fused_model(source)
    tokenizer = load_tokenizer(source.base_path, eos_token_ids=config.get("eos_token_id"))
    save(folder, source.base_path, model, tokenizer, config, donate_model=True)
    write_text(folder / "generation_config.json", json.dumps(generation_config(source), indent=2))
    usage = (
        "```sh\n"
        "mlx_lm.generate --model <this folder> --prompt 'Hello!'\n"
        "mlx_lm.server --model <this folder>\n"
        "```\n\n"
        "The persona's system prompt is not part of the weights: send it as the system message."
    )
    files = {
        "model.safetensors": "base weights with the adapter merged in (mlx-lm `fuse`)",
        "config.json": "model config",
        "tokenizer.json, tokenizer_config.json": "tokenizer and Gemma 3 chat template",
        "generation_config.json": "stop ids and the persona's sampling defaults",
    }
    write_text(folder / "README.md", model_card(source, "mlx", files, usage))
