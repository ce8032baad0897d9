"""The engine on the embedded Gemma 3 270M gives raw mlx-lm's greedy chat reply, token for token."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_greedy_chat_reply_matches_raw_stream_generate(embedded_model_dir: Path) -> None:
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler
    from mlx_lm.utils import load_model

    from adapters.base import EMBEDDED_ID, STOP_IDS
    from server.engine.engine import Engine, GenerationRequest, SamplingParams

    engine = Engine.load("embedded", max_batch=2, max_adapters=1)
    assert engine.model_id == EMBEDDED_ID
    assert engine.context_length == 32768
    assert set(engine.tokenizer.eos_token_ids) == set(STOP_IDS)
    prompt = engine.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
    )
    raw_model, _ = load_model(embedded_model_dir)
    raw = [
        r.token
        for r in stream_generate(
            raw_model, engine.tokenizer, prompt, max_tokens=16, sampler=make_sampler(0.0)
        )
    ]

    async def generate() -> list[int]:
        engine.start()
        try:
            params = SamplingParams(max_tokens=16, temperature=0.0)
            request = GenerationRequest(tuple(prompt), params)
            return [t async for d in engine.stream(request) for t in d.token_ids]
        finally:
            await engine.aclose()

    assert asyncio.run(generate()) == raw


def test_lookup_drafts_and_the_gemv_head_keep_the_270m_greedy_replies() -> None:
    # One engine for both settings (loading the 270M is the slow part): each setting alone is
    # switched on over the same weights and must give the plain engine's tokens.
    from server.engine.engine import Engine, GenerationRequest, SamplingParams

    engine = Engine.load("embedded", max_batch=2, max_adapters=1, lookup_draft=4, gemv_head=True)
    texts = (
        "Monday, Tuesday, Wednesday, Monday, Tuesday,",
        "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    )

    async def replies() -> dict[str, list[list[int]]]:
        engine.start()
        batch = engine._scheduler.batch
        head = batch.head
        assert head is not None
        out: dict[str, list[list[int]]] = {"drafts": [], "gemv": [], "plain": []}
        try:
            for text in texts:
                request = GenerationRequest(
                    tuple(engine.tokenizer.encode(text)),
                    SamplingParams(max_tokens=24, temperature=0.0),
                )
                for name, draft, chosen in (("drafts", 4, None), ("gemv", 0, head),
                                            ("plain", 0, None)):  # fmt: skip
                    batch.draft, batch.head = draft, chosen
                    out[name].append([t async for d in engine.stream(request) for t in d.token_ids])
            return out
        finally:
            batch.draft, batch.head = 4, head
            await engine.aclose()

    out = asyncio.run(replies())
    assert out["drafts"] == out["plain"]
    assert out["gemv"] == out["plain"]
    stats = engine.stats()
    assert stats.lookup_accepted_tokens > 0
    assert stats.gemv_head_steps > 10 * stats.gemv_head_fallbacks
