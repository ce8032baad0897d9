"""llama.cpp agrees with `persona serve` on the shipped Juni adapter, teacher-forced (270M).

Our greedy tokens come from the engine that serves them (the sample adapter as LoRA layers over
the dequantized base). llama.cpp is fed the same prompt and tokens, once as the embedded Q4_K_M
GGUF plus the exported LoRA GGUF (what the Ollama folder holds) and once as the fused f16
`gguf-full` file, and must choose our token at every position. llama.cpp quantizes activations to
8 bits on Q4_K_M weights, which moves top-2 margins by up to about 0.5 nats, so a position where
both sides' margins are within the allowance is a near-tie, counted and reported, not a failure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from export_files import export
from llama_cpp import agreement, greedy_with_margins, skip_reason, teacher_force, with_adapter

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

PROMPTS = (
    "What lives in a tide pool?",
    "Can you help me with my homework about volcanoes?",
)
TOKENS = 20
ALLOWANCE = {"lora on Q4_K_M": 0.5, "fused f16": 0.1}
"""Nats: the largest top-2 margin (on either side) at which a different choice counts as a tie."""


def served_tokens(prompts: list[list[int]], checkpoint: Path) -> list[list[int]]:
    """The engine's greedy replies, as `persona serve` produces them."""
    from adapters.registry import read_manifest
    from server.engine.engine import Engine, GenerationRequest, SamplingParams
    from server.engine.types import AdapterRef

    manifest = read_manifest(checkpoint)
    assert manifest is not None
    engine = Engine.load("embedded", max_batch=4, max_adapters=1)
    ref = AdapterRef(manifest, checkpoint)

    async def run() -> list[list[int]]:
        engine.start()
        try:
            params = SamplingParams(max_tokens=TOKENS, temperature=0.0, min_tokens=TOKENS)
            replies = []
            for prompt in prompts:
                request = GenerationRequest(tuple(prompt), params, adapter=ref)
                replies.append([t async for d in engine.stream(request) for t in d.token_ids])
            return replies
        finally:
            await engine.aclose()

    return asyncio.run(run())


def test_llama_cpp_agrees_with_served_juni(
    embedded_model_dir: Path, tmp_path: Path, persona_home: Path
) -> None:
    from adapters.training.model import load_tokenizer
    from data.personas import resolve

    assert export(["juni", "--to", "ollama", "--out", str(tmp_path / "ollama")]) == 0
    assert export(["juni", "--to", "gguf-full", "--out", str(tmp_path / "full")]) == 0
    checkpoint = next((persona_home / "adapters" / "juni" / "run-1" / "checkpoints").iterdir())
    entry = resolve("juni")
    tokenizer = load_tokenizer(embedded_model_dir)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": entry.card.system_prompt},
             {"role": "user", "content": text}],
            add_generation_prompt=True,
        )
        for text in PROMPTS
    ]  # fmt: skip
    replies = served_tokens(prompts, checkpoint)
    model = with_adapter(embedded_model_dir, checkpoint)
    ours = []
    for prompt, reply in zip(prompts, replies, strict=True):
        again, margins = greedy_with_margins(model, prompt, TOKENS)
        assert again == reply  # raw mlx-lm with the adapter says what the server said
        ours.append(margins)
    del model
    ollama = tmp_path / "ollama"
    runs = {
        "lora on Q4_K_M": (next(ollama.glob("gemma-*.gguf")), next(ollama.glob("*-lora.gguf"))),
        "fused f16": (next((tmp_path / "full").glob("*.gguf")), None),
    }
    report = []
    for name, (gguf, lora) in runs.items():
        positions = teacher_force(gguf, list(zip(prompts, replies, strict=True)), lora=lora)
        ties = 0
        for reply, margins, theirs in zip(replies, ours, positions, strict=True):
            result = agreement(reply, margins, theirs, ALLOWANCE[name])
            assert result.disagreements == [], (name, result)
            ties += len(result.near_ties)
        report.append(f"{name}: {len(PROMPTS) * TOKENS} positions, {ties} near-ties")
    print("; ".join(report))
