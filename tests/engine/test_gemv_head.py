"""The output layer through NumPy's GEMV: the same greedy tokens as MLX's product, always.

The oracle is MLX's own `argmax(hidden @ weight.T + mask)`, and an engine with the option off.
Each case checks which path ran (proven or fallen back), so a head that is never used, or never
falls back, cannot pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import mlx.core as mx
import pytest

from server.engine.engine import Engine, GenerationRequest, SamplingParams
from server.engine.gemv_head import GemvHead
from server.engine.token_mask import additive_mask

PROMPTS = (
    "The old lighthouse keeper climbed the stairs every evening, and on the last night",
    "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    "def add(a, b):\n",
)


@pytest.fixture(scope="module")
def engines(make_engine: Callable[..., Engine]) -> Iterator[tuple[Engine, Engine]]:
    """(GEMV head on, off) on the tiny model, both started."""
    pair = (make_engine(gemv_head=True), make_engine())
    for engine in pair:
        engine.start()
    yield pair
    for engine in pair:
        asyncio.run(engine.aclose())


async def reply(engine: Engine, prompt: tuple[int, ...], n: int, **fields: object) -> list[int]:
    """The generated ids of one greedy sequence of at most `n` tokens."""
    params = SamplingParams(max_tokens=n, temperature=0.0, **fields)  # type: ignore[arg-type]
    return [t async for d in engine.stream(GenerationRequest(prompt, params)) for t in d.token_ids]


def mlx_token(hidden: mx.array, weight: mx.array, mask: mx.array | None) -> int:
    """MLX's greedy token for one hidden state."""
    logits = hidden @ weight.T
    return int(mx.argmax(logits if mask is None else logits + mask, axis=-1).item())


async def test_greedy_replies_match_the_engine_without_it(engines: tuple[Engine, Engine]) -> None:
    on, off = engines
    for text in PROMPTS:
        prompt = tuple(on.tokenizer.encode(text))
        for n in (1, 24):
            assert await reply(on, prompt, n) == await reply(off, prompt, n), (text, n)
    stats = on.stats()
    assert stats.gemv_head_steps > 0
    assert off.stats().gemv_head_steps == off.stats().gemv_head_fallbacks == 0


async def test_batches_and_rows_with_per_token_work_keep_mlx_s_product(
    engines: tuple[Engine, Engine],
) -> None:
    on, off = engines
    prompt = tuple(on.tokenizer.encode(PROMPTS[0]))
    before = on.stats().gemv_head_steps
    both = await asyncio.gather(reply(on, prompt, 16), reply(on, prompt[:-2], 16))
    assert list(both) == list(
        await asyncio.gather(reply(off, prompt, 16), reply(off, prompt[:-2], 16))
    )
    fields = {"logprobs": True, "top_logprobs": 2}
    assert await reply(on, prompt, 8, **fields) == await reply(off, prompt, 8, **fields)
    # The two rows shared their steps except where one had finished; none of the logprob row's.
    assert on.stats().gemv_head_steps - before <= 2


async def test_a_bound_that_proves_nothing_falls_back_every_step(
    engines: tuple[Engine, Engine],
) -> None:
    on, off = engines
    head = on._scheduler.batch.head
    assert head is not None
    gamma, head._gamma = head._gamma, 1e9
    try:
        before = on.stats()
        prompt = tuple(on.tokenizer.encode(PROMPTS[1]))
        assert await reply(on, prompt, 16) == await reply(off, prompt, 16)
        after = on.stats()
        assert after.gemv_head_steps == before.gemv_head_steps
        assert after.gemv_head_fallbacks > before.gemv_head_fallbacks
    finally:
        head._gamma = gamma


def test_pick_equals_mlx_and_a_banned_token_never_wins() -> None:
    mx.random.seed(3)
    weight = mx.random.normal((5000, 64)) * 0.1
    hidden = mx.random.normal((1, 64)) * 10
    raw_best = mlx_token(hidden, weight, None)
    banned = (raw_best, 7)
    mask = additive_mask(banned, 5000, mx.float32)
    head = GemvHead(weight, banned, mask)
    for _ in range(20):
        hidden = mx.random.normal((1, 64)) * 10
        assert int(head.pick(hidden).item()) == mlx_token(hidden, weight, mask)
    hidden = mx.random.normal((1, 64))
    weight_best = mlx_token(hidden, weight, None)
    head = GemvHead(weight, (weight_best,), additive_mask((weight_best,), 5000, mx.float32))
    assert int(head.pick(hidden).item()) != weight_best
    assert head.proven == 1


def test_an_exact_tie_falls_back_to_mlx_s_first_index() -> None:
    mx.random.seed(4)
    rows = mx.random.normal((300, 32)) * 0.1
    hidden = mx.random.normal((1, 32))
    best = mlx_token(hidden, rows, None)
    weight = mx.concatenate([rows[:best], rows[best : best + 1], rows[best:]])  # a twin row
    head = GemvHead(weight, (), None)
    assert int(head.pick(hidden).item()) == mlx_token(hidden, weight, None) == best
    assert (head.proven, head.fallbacks) == (0, 1)


def test_only_float32_gemma3_text_heads_are_taken(tiny_model: tuple[object, object]) -> None:
    model, _ = tiny_model
    assert GemvHead.for_model(model, (), None) is not None  # type: ignore[arg-type]
    args = model.args  # type: ignore[attr-defined]
    kind, args.model_type = args.model_type, "gemma2"
    try:
        assert GemvHead.for_model(model, (), None) is None  # type: ignore[arg-type]
    finally:
        args.model_type = kind
