"""`--to peft`: a Hugging Face PEFT LoRA adapter, loadable by vLLM, SGLang, LoRAX and PEFT.

`adapter_config.json` says `peft_type: LORA` with `r`, `lora_alpha = scale * r`, the adapted
module names and layers; `adapter_model.safetensors` holds `lora_A.weight` (r, in) and
`lora_B.weight` (out, r) under PEFT's `base_model.model.` prefix, plus DoRA's
`lora_magnitude_vector` when the adapter is DoRA.
"""

from __future__ import annotations

import json
from pathlib import Path

from data.atomic import write_text

from .lora import read_lora
from .readme import model_card
from .source import ExportOptions, ExportSource

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


def refusal(source: ExportSource) -> str | None:
    """Why this checkpoint cannot be a PEFT adapter, or None."""
    if source.lora.fine_tune_type == "full":
        return (
            "a full fine-tune changes the base weights and has no LoRA factors; "
            "export it with --to mlx or --to gguf-full"
        )
    return None


def peft_config(source: ExportSource, layers: list[int], modules: list[str]) -> dict[str, object]:
    """PEFT's LoraConfig as JSON for this adapter."""
    lora = source.lora
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": source.base_name,
        "r": lora.rank,
        "lora_alpha": lora.scale * lora.rank,
        "lora_dropout": lora.dropout,
        "target_modules": modules,
        "layers_to_transform": layers,
        "layers_pattern": "layers",
        "use_dora": lora.fine_tune_type == "dora",
        "use_rslora": False,
        "fan_in_fan_out": False,
        "bias": "none",
        "modules_to_save": None,
        "inference_mode": True,
    }


def vllm_rank(rank: int) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that holds `rank`."""
    return next((r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank), rank)


def write(source: ExportSource, folder: Path, options: ExportOptions) -> None:
    """Write the adapter, its config and the model card into `folder`."""
    from safetensors.numpy import save_file

    modules = read_lora(source)
    tensors = {}
    for m in modules:
        prefix = f"base_model.model.model.layers.{m.layer}.{m.key}"
        tensors[f"{prefix}.lora_A.weight"] = m.a
        tensors[f"{prefix}.lora_B.weight"] = m.b
        if m.magnitude is not None:
            tensors[f"{prefix}.lora_magnitude_vector"] = m.magnitude
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})
    layers = sorted({m.layer for m in modules})
    names = sorted({m.key.rsplit(".", 1)[-1] for m in modules})
    config = peft_config(source, layers, names)
    write_text(folder / CONFIG, json.dumps(config, indent=2) + "\n")
    usage = (
        "```sh\n"
        f"vllm serve {source.base_name} --enable-lora "
        f"--max-lora-rank {vllm_rank(source.lora.rank)} "
        f"--lora-modules {source.manifest.persona}=<this folder>\n"
        "```\n\n"
        "```python\n"
        "from peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM\n\n"
        f'base = AutoModelForCausalLM.from_pretrained("{source.base_name}")\n'
        'model = PeftModel.from_pretrained(base, "<this folder>")\n'
        "```"
    )
    files = {CONFIG: "PEFT LoraConfig", WEIGHTS: "LoRA factors (PEFT names and orientation)"}
    write_text(folder / "README.md", model_card(source, "peft", files, usage))
