"""No reply ever holds a control or unused token: sampled, greedy, biased or under a grammar."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.engine.engine import Engine, GenerationRequest, JsonGrammar, SamplingParams
from server.engine.token_mask import additive_mask, banned_ids

STOPS = (1, 106)


@pytest.fixture(scope="module")
def engine(make_engine: Callable[..., Engine]) -> Iterator[Engine]:
    """One started engine on the tiny model (random weights, real Gemma tokenizer)."""
    eng = make_engine()
    eng.start()
    yield eng
    asyncio.run(eng.aclose())


@pytest.fixture(scope="module")
def banned(tiny_model: Any) -> frozenset[int]:
    """What the mask holds for the real tokenizer."""
    return frozenset(banned_ids(tiny_model[1], STOPS))


def unused(tiny_model: Any, n: int) -> int:
    """The id of `<unusedN>`."""
    return int(tiny_model[1].convert_tokens_to_ids(f"<unused{n}>"))


def test_banned_ids_cover_control_and_unused_tokens(tiny_model: Any, banned: frozenset[int]):
    tokenizer = tiny_model[1]
    assert {0, 2, 3, 4, 105} <= banned  # pad, bos, unk, mask, start_of_turn
    assert unused(tiny_model, 5943) in banned
    assert unused(tiny_model, 2758) in banned
    assert tokenizer.convert_tokens_to_ids("<start_of_image>") in banned
    assert len(banned) > 6000
    assert not banned & set(STOPS)  # a reply must be able to end
    newline, tab = tokenizer.encode("\n", add_special_tokens=False)[0], 5 + 1
    assert newline not in banned  # whitespace tokens are text
    assert tab not in banned or tokenizer.convert_ids_to_tokens(tab).strip()
    assert banned_ids(tokenizer, STOPS) == tuple(sorted(banned))  # cached, same answer


def test_additive_mask_row() -> None:
    import mlx.core as mx

    row = additive_mask([1, 3, 99], 5, mx.float32)
    assert row.tolist() == [0.0, float("-inf"), 0.0, float("-inf"), 0.0]


def prompt(engine: Engine, text: str) -> tuple[int, ...]:
    return tuple(
        engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True
        )
    )


async def tokens(engine: Engine, request: GenerationRequest) -> list[int]:
    return [t async for d in engine.stream(request) for t in d.token_ids]


async def test_many_sampled_tokens_hold_none(engine: Engine, banned: frozenset[int]) -> None:
    # Random weights spread mass over the whole vocabulary: unmasked, about 2.4% of draws
    # (6,200 of 262,144 ids) would be control or unused tokens, about 10 of these 400.
    params = [
        SamplingParams(max_tokens=50, temperature=t, top_p=p, seed=seed, min_tokens=50)
        for seed, (t, p) in enumerate([(1.0, 1.0), (1.5, 1.0), (1.0, 0.99), (2.0, 0.999)] * 2)
    ]
    seqs = await asyncio.gather(
        *(tokens(engine, GenerationRequest(prompt(engine, "hi"), p)) for p in params)
    )
    drawn = [t for seq in seqs for t in seq]
    assert len(drawn) == 400
    assert not [t for t in drawn if t in banned]
    text = engine.tokenizer.decode(drawn)
    assert "<unused" not in text
    assert "<start_of_turn>" not in text


@pytest.mark.parametrize("temperature", [0.0, 1.0])
async def test_a_biased_unused_token_is_still_never_drawn(
    engine: Engine, tiny_model: Any, temperature: float
) -> None:
    # +100 would make it certain without the mask (greedy and sampled alike).
    target = unused(tiny_model, 5943)
    params = SamplingParams(
        max_tokens=20, temperature=temperature, seed=3, logit_bias=((target, 100.0),)
    )
    drawn = await tokens(engine, GenerationRequest(prompt(engine, "hello"), params))
    assert drawn
    assert target not in drawn


async def test_grammar_rows_are_masked_too(engine: Engine, tiny_model: Any) -> None:
    target = unused(tiny_model, 2758)
    params = SamplingParams(max_tokens=12, temperature=1.0, seed=5, logit_bias=((target, 100.0),))
    request = GenerationRequest(
        prompt(engine, "json"), params, grammar=JsonGrammar('{"type":"object"}')
    )
    drawn = await tokens(engine, request)
    assert drawn
    assert target not in drawn
