"""The engine on the tiny model: batching, stop ids and strings, sampling, cancellation, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.engine.batch import PREFILL_STEP
from server.engine.engine import (
    ContextLengthError,
    Delta,
    Engine,
    EngineClosed,
    GenerationRequest,
    InvalidParams,
    SamplingParams,
)

END_OF_TURN = 106
WAIT = 60.0
"""Upper bound when waiting for the engine thread to catch up; tests never assert durations."""


@pytest.fixture(scope="module")
def engine(make_engine: Callable[..., Engine]) -> Iterator[Engine]:
    """One started engine on the tiny model for the whole module."""
    eng = make_engine()
    eng.start()
    yield eng
    asyncio.run(eng.aclose())


def chat(engine: Engine, text: str) -> tuple[int, ...]:
    """Token ids of a one-turn chat prompt."""
    return tuple(
        engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True
        )
    )


def greedy(max_tokens: int = 12, **extra: Any) -> SamplingParams:
    """Deterministic sampling."""
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, **extra)


async def run(engine: Engine, prompt: tuple[int, ...], params: SamplingParams) -> list[Delta]:
    """All deltas of one sequence."""
    return [d async for d in engine.stream(GenerationRequest(prompt, params))]


def ids(deltas: list[Delta]) -> list[int]:
    """Every generated token id of a sequence."""
    return [t for d in deltas for t in d.token_ids]


def text(deltas: list[Delta]) -> str:
    """The visible reply."""
    return "".join(d.text for d in deltas)


async def until(condition: Any) -> None:
    """Wait (bounded) for the engine thread to reach a state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, "the engine did not get there"
        await asyncio.sleep(0.01)


async def test_batched_greedy_output_equals_each_sequence_alone(engine: Engine) -> None:
    prompts = [chat(engine, t) for t in ("hi", "tell me about whales please", "a b c d e f g h")]
    alone = [ids(await run(engine, p, greedy(16))) for p in prompts]
    before = dict(engine.stats().batch_sizes)
    groups = engine.stats().prefill_groups
    together = await asyncio.gather(*(run(engine, p, greedy(16)) for p in prompts))
    assert [ids(d) for d in together] == alone
    # Arriving together, the three prompts (of different lengths) were prefilled left-padded.
    assert engine.stats().prefill_groups - groups < len(prompts)
    after = dict(engine.stats().batch_sizes)
    shared = sum(n for size, n in after.items() if size >= 2) - sum(
        n for size, n in before.items() if size >= 2
    )
    assert shared > 0, "the three sequences never shared a decode step"


async def test_rows_joining_mid_generation_and_sliding_window_match_alone(engine: Engine) -> None:
    # 600 tokens overflow the tiny model's 512-token sliding window, so the rotating cache wraps
    # while a short row with much less left padding shares the batch.
    long_prompt = chat(engine, " ".join(["word"] * 590))
    short_prompt = chat(engine, "short")
    long_alone = ids(await run(engine, long_prompt, greedy(24)))
    short_alone = ids(await run(engine, short_prompt, greedy(8)))

    async def late_short() -> list[Delta]:
        await asyncio.sleep(0)
        return await run(engine, short_prompt, greedy(8))

    long_run, short_run = await asyncio.gather(run(engine, long_prompt, greedy(24)), late_short())
    assert ids(long_run) == long_alone
    assert ids(short_run) == short_alone


async def test_a_prompt_prefilled_in_chunks_matches_mlx_lm(
    engine: Engine, tiny_model_dir: Path
) -> None:
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.utils import load_model

    # 1,100 tokens take three prefill chunks, interleaved with the decode steps of other rows.
    prompt = chat(engine, " ".join(["river"] * 1090))
    assert len(prompt) > 2 * PREFILL_STEP
    reference, _ = load_model(tiny_model_dir)
    expected = [t for t, _ in generate_step(mx.array(prompt), reference, max_tokens=8)]
    busy = asyncio.create_task(run(engine, chat(engine, "meanwhile"), greedy(60)))
    long_run = await run(engine, prompt, greedy(8))
    assert ids(long_run) == expected
    assert (await busy)[-1].token_count == 60


async def test_a_stop_id_ends_generation(engine: Engine) -> None:
    deltas = await run(engine, chat(engine, "hi"), greedy(50, logit_bias=((END_OF_TURN, 1e9),)))
    assert deltas[-1].finish_reason == "stop"
    assert ids(deltas) == [END_OF_TURN]
    assert text(deltas) == ""


async def test_min_tokens_masks_stop_ids_until_reached(engine: Engine) -> None:
    params = greedy(50, logit_bias=((END_OF_TURN, 1e9),), min_tokens=3)
    deltas = await run(engine, chat(engine, "hi"), params)
    generated = ids(deltas)
    assert deltas[-1].finish_reason == "stop"
    assert len(generated) == 4
    assert END_OF_TURN not in generated[:3]
    assert generated[3] == END_OF_TURN


async def test_max_tokens_finishes_with_length(engine: Engine) -> None:
    deltas = await run(engine, chat(engine, "count"), greedy(5))
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].token_count == 5
    assert len(ids(deltas)) == 5
    assert deltas[-1].prompt_tokens == len(chat(engine, "count"))


async def test_stop_string_text_is_withheld(engine: Engine) -> None:
    prompt = chat(engine, "say something long")
    full = text(await run(engine, prompt, greedy(30)))
    assert len(full) > 12
    stop = full[len(full) // 2 : len(full) // 2 + 4]
    deltas = await run(engine, prompt, greedy(30, stop=("zzzz-never", stop)))
    assert deltas[-1].finish_reason == "stop"
    assert text(deltas) == full[: full.index(stop)]
    assert all(stop not in d.text for d in deltas)


async def test_a_seed_makes_a_sampled_reply_reproducible_even_in_a_batch(engine: Engine) -> None:
    prompt = chat(engine, "surprise me")
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=1234)
    first = ids(await run(engine, prompt, seeded))
    neighbours = SamplingParams(max_tokens=12, temperature=1.0)
    again, *_ = await asyncio.gather(
        run(engine, prompt, seeded),
        run(engine, prompt, neighbours),
        run(engine, prompt, neighbours),
    )
    other = ids(await run(engine, prompt, SamplingParams(max_tokens=12, temperature=1.0, seed=99)))
    assert ids(again) == first
    assert other != first


async def test_a_batch_mixing_every_kind_of_row_gives_each_row_what_it_gets_alone(
    engine: Engine,
) -> None:
    # Plain greedy rows take the raw argmax; the others share one normalisation and one greedy
    # argmax across the batch: each row must still get exactly its solo tokens and logprobs.
    prompt = chat(engine, "tell me something")
    kinds = [
        greedy(10),
        greedy(10, logit_bias=((1, -100.0), (END_OF_TURN, -100.0))),
        SamplingParams(max_tokens=10, temperature=0.9, top_p=0.95, seed=5),
        SamplingParams(max_tokens=10, temperature=1.0, seed=6, min_tokens=4),
        greedy(10, logprobs=True, top_logprobs=3),
        SamplingParams(max_tokens=10, temperature=0.8, seed=8, logprobs=True, top_logprobs=2),
    ]

    def seen(deltas: list[Delta]) -> tuple[list[int], list[Any], list[float]]:
        """Token ids, each logprob entry's token and alternatives, and its logprob."""
        entries = [e for d in deltas for e in d.logprobs]
        names = [(e.token, sorted(t for t, _, _ in e.top)) for e in entries]
        return ids(deltas), names, [e.logprob for e in entries]

    alone = [seen(await run(engine, prompt, params)) for params in kinds]
    together = [seen(d) for d in await asyncio.gather(*(run(engine, prompt, p) for p in kinds))]
    for (solo_ids, solo_names, solo_values), (ids_, names, values) in zip(
        alone, together, strict=True
    ):
        assert ids_ == solo_ids
        assert names == solo_names
        # Batching moves a logit by about 1e-6, never more than that.
        assert values == pytest.approx(solo_values, abs=1e-4)


async def test_sampling_filters_and_penalties_run(engine: Engine) -> None:
    params = SamplingParams(
        max_tokens=10,
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        repetition_penalty=1.3,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        seed=7,
    )
    deltas = await run(engine, chat(engine, "hello"), params)
    assert deltas[-1].finish_reason in ("stop", "length")
    assert deltas[-1].token_count == len(ids(deltas))


async def test_presence_and_frequency_penalties_count_completion_repeats(engine: Engine) -> None:
    prompt = chat(engine, "repeat")
    bias = ((500, 10.0),)
    plain = ids(await run(engine, prompt, greedy(12, logit_bias=bias)))
    presence = ids(await run(engine, prompt, greedy(12, logit_bias=bias, presence_penalty=50)))
    frequency = ids(await run(engine, prompt, greedy(12, logit_bias=bias, frequency_penalty=2)))
    assert plain == [500] * 12
    # Present once costs 50 at once; each repeat costs 2 more, so a bias of 10 lasts ~5 times.
    assert presence.count(500) == 1
    assert 2 <= frequency.count(500) <= 7


async def test_logprobs_report_the_chosen_token_and_top_alternatives(engine: Engine) -> None:
    deltas = await run(engine, chat(engine, "hi"), greedy(6, logprobs=True, top_logprobs=3))
    entries = [lp for d in deltas for lp in d.logprobs]
    assert len(entries) == 6
    for entry in entries:
        assert len(entry.top) == 3
        assert entry.logprob <= 0.0
        # Greedy picks the most likely token, so it heads the alternatives.
        assert entry.top[0][:2] == (entry.token, pytest.approx(entry.logprob, abs=1e-5))
        assert entry.top[0][1] >= entry.top[1][1] >= entry.top[2][1]
        assert entry.bytes == tuple(entry.token.encode()) or len(entry.bytes) == 1


async def test_closing_the_stream_frees_the_row(engine: Engine) -> None:
    stream = engine.stream(GenerationRequest(chat(engine, "go on"), greedy(1500)))
    seen = [await anext(stream) for _ in range(3)]
    assert all(d.finish_reason is None for d in seen)
    assert engine.stats().active == 1
    await stream.aclose()
    await until(lambda: engine.stats().active == 0)
    after = await run(engine, chat(engine, "hi"), greedy(4))
    assert after[-1].finish_reason == "length"


async def test_cancelling_the_consumer_task_frees_the_row(engine: Engine) -> None:
    cancelled = engine.stats().cancelled
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.stream(GenerationRequest(chat(engine, "go"), greedy(1500))):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: engine.stats().active == 0)
    assert engine.stats().cancelled == cancelled + 1


def test_a_prompt_over_the_context_is_refused_before_queueing(engine: Engine) -> None:
    requests = engine.stats().requests
    prompt = (2,) + (100,) * (engine.context_length - 10)
    with pytest.raises(ContextLengthError) as info:
        engine.stream(GenerationRequest(prompt, greedy(20)))
    assert info.value.limit == engine.context_length
    assert info.value.prompt_tokens == len(prompt)
    assert str(engine.context_length) in str(info.value)
    assert engine.stats().requests == requests


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (SamplingParams(logprobs=True, top_logprobs=21), "top_logprobs"),
        (SamplingParams(logit_bias=((10**9, 1.0),)), "logit_bias"),
        (SamplingParams(temperature=-1.0), "temperature"),
        (SamplingParams(max_tokens=0), "max_tokens"),
    ],
)
def test_parameters_the_engine_cannot_run_are_refused(
    engine: Engine, params: SamplingParams, field: str
) -> None:
    with pytest.raises(InvalidParams) as info:
        engine.stream(GenerationRequest((2, 100), params))
    assert info.value.param == field


async def test_a_full_batch_queues_the_rest(make_engine: Callable[..., Engine]) -> None:
    small = make_engine(max_batch=2, max_adapters=1)
    small.start()
    try:
        prompt = chat(small, "hi")
        results = await asyncio.gather(*(run(small, prompt, greedy(6)) for _ in range(5)))
        assert all(r[-1].finish_reason == "length" for r in results)
        assert len({tuple(ids(r)) for r in results}) == 1
        assert max(dict(small.stats().batch_sizes)) == 2
        assert small.stats().finished == 5
    finally:
        await small.aclose()


async def test_a_closed_engine_refuses_new_work(make_engine: Callable[..., Engine]) -> None:
    closing = make_engine(max_batch=2, max_adapters=1)
    closing.start()
    await closing.aclose()
    with pytest.raises(EngineClosed):
        await run(closing, (2, 100), greedy(2))
