"""llama.cpp runs the exported GGUFs and agrees with MLX, teacher-forced (tiny model).

A tiny Gemma 3 base is written as an f16 GGUF; llama.cpp (node-llama-cpp) is fed the prompt and
our greedy reply and must pick our token at every position, with the exported LoRA GGUF on that
base, and with the fused `gguf-full` file alone. Without the adapter it must not: that shows the
adapter is really applied.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_files import export, publish_adapter
from llama_cpp import agreement, greedy_with_margins, skip_reason, teacher_force, with_adapter
from safetensors.numpy import load_file

from adapters.export.gguf_model import write_model_gguf

ALLOWANCE = 0.05
"""Nats: f16 weights on both sides; llama.cpp and MLX differ only by rounding."""

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def test_llama_cpp_agrees_with_the_exported_ggufs(
    tiny_model_dir: Path, tiny_model: tuple, tmp_path: Path
) -> None:
    _, tokenizer = tiny_model
    root = tmp_path / "adapters"
    ckpt = publish_adapter(root, "toy", tiny_model_dir, rank=4, std=0.05, seed=11)
    common = ["--model", str(tiny_model_dir), "--adapters", str(root)]
    assert export(["toy", "--to", "gguf", "--out", str(tmp_path / "lora"), *common]) == 0
    assert export(["toy", "--to", "gguf-full", "--out", str(tmp_path / "full"), *common]) == 0
    base = tmp_path / "base-f16.gguf"
    config = json.loads((tiny_model_dir / "config.json").read_text())
    write_model_gguf(base, load_file(str(tiny_model_dir / "model.safetensors")), config, "f16", "b")
    lora = next((tmp_path / "lora").glob("*.gguf"))
    fused = next((tmp_path / "full").glob("*.gguf"))

    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True
        )
        for text in ("Tell me about gears.", "Why is the sea salty?")
    ]
    model = with_adapter(tiny_model_dir, ckpt.path)
    runs = [greedy_with_margins(model, p, 12) for p in prompts]
    sequences = [(p, reply) for p, (reply, _) in zip(prompts, runs, strict=True)]
    for gguf, adapter in ((base, lora), (fused, None)):
        positions = teacher_force(gguf, sequences, lora=adapter)
        for (reply, ours), theirs in zip(runs, positions, strict=True):
            result = agreement(reply, ours, theirs, ALLOWANCE)
            assert result.disagreements == [], (gguf.name, result)
            assert len(result.near_ties) <= 1, (gguf.name, result)
    without = teacher_force(base, sequences)
    misses = sum(
        pos.token != token
        for (reply, _), theirs in zip(runs, without, strict=True)
        for token, pos in zip(reply, theirs, strict=True)
    )
    assert misses >= 6  # the base alone says something else: the adapter above was applied
