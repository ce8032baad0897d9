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


def test_lookup_drafts_keep_the_270m_greedy_replies_and_save_steps() -> None:
    from server.engine.engine import Engine, GenerationRequest, SamplingParams

    engine = Engine.load("embedded", max_batch=2, max_adapters=1, lookup_draft=4)
    texts = (
        "The old lighthouse keeper climbed the stairs every evening, and on the last night",
        "Monday, Tuesday, Wednesday, Monday, Tuesday,",
        "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    )

    async def replies() -> tuple[list[list[int]], list[list[int]]]:
        engine.start()
        batch = engine._scheduler.batch
        try:
            drafted, plain = [], []
            for text in texts:
                request = GenerationRequest(
                    tuple(engine.tokenizer.encode(text)),
                    SamplingParams(max_tokens=32, temperature=0.0),
                )
                for draft, out in ((4, drafted), (0, plain)):
                    batch.draft = draft  # the same weights with drafts on, then off
                    out.append([t async for d in engine.stream(request) for t in d.token_ids])
            return drafted, plain
        finally:
            await engine.aclose()

    drafted, plain = asyncio.run(replies())
    assert drafted == plain
    stats = engine.stats()
    assert stats.lookup_accepted_tokens > 0
    assert stats.steps < stats.completion_tokens


def test_the_gemv_head_keeps_the_270m_greedy_replies_and_proves_most_steps() -> None:
    from server.engine.engine import Engine, GenerationRequest, SamplingParams

    engine = Engine.load("embedded", max_batch=2, max_adapters=1, gemv_head=True)
    texts = (
        "The old lighthouse keeper climbed the stairs every evening, and on the last night",
        "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    )

    async def replies() -> tuple[list[list[int]], list[list[int]]]:
        engine.start()
        batch = engine._scheduler.batch
        head = batch.head
        assert head is not None
        try:
            fast, plain = [], []
            for text in texts:
                request = GenerationRequest(
                    tuple(engine.tokenizer.encode(text)),
                    SamplingParams(max_tokens=24, temperature=0.0),
                )
                for chosen, out in ((head, fast), (None, plain)):
                    batch.head = chosen  # the same weights with the GEMV head on, then off
                    out.append([t async for d in engine.stream(request) for t in d.token_ids])
            return fast, plain
        finally:
            batch.head = head
            await engine.aclose()

    fast, plain = asyncio.run(replies())
    assert fast == plain
    stats = engine.stats()
    assert stats.gemv_head_steps > 10 * stats.gemv_head_fallbacks
