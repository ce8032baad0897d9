"""The prefix cache on the tiny model: greedy replies with the cache on equal those without it.

Conversations are built the way a chat client builds them: each turn resends the history with
the model's reply and a new user message appended. The token-level ones append the exact reply
ids (a whole stored entry is continued); the text-level ones go through the chat template, where
a reply may re-tokenize differently and only a shorter prefix matches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from adapter_files import publish_random

from adapters.registry import Checkpoint
from server.engine.engine import AdapterRef, Engine, GenerationRequest, SamplingParams
from server.engine.prefix_cache import MIN_REUSE, common_prefix
from tests.engine.conftest import SMALL_WINDOW

BUDGET = 64 << 20
"""Ample room for every test conversation on the tiny model."""
USERS = (
    "hello there, who are you?",
    "tell me about the sea and the boats on it",
    "and what about the mountains far away from here?",
    "thank you, one last question: what is your favourite colour and why?",
)
"""Sliding window of the small-window copy of the tiny model: every conversation wraps it."""


@pytest.fixture(scope="module")
def engines(make_engine: Callable[..., Engine]) -> Iterator[tuple[Engine, Engine]]:
    """(cache on, cache off) on the tiny model, both started."""
    pair = (make_engine(prefix_cache_bytes=BUDGET), make_engine(prefix_cache_bytes=0))
    for engine in pair:
        engine.start()
    yield pair
    for engine in pair:
        asyncio.run(engine.aclose())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapters folder for the module."""
    return tmp_path_factory.mktemp("adapters")


def ref(ckpt: Checkpoint) -> AdapterRef:
    """The engine's handle on a published checkpoint."""
    return AdapterRef(ckpt.manifest, ckpt.path)


def user_turn(engine: Engine, text: str) -> tuple[int, ...]:
    """The tokens that close the model's turn and open the next user turn and model reply."""
    rendered = f"<end_of_turn>\n<start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n"
    return tuple(engine.tokenizer.encode(rendered, add_special_tokens=False))


def first_prompt(engine: Engine, text: str = USERS[0]) -> tuple[int, ...]:
    """A one-turn chat prompt."""
    messages = [{"role": "user", "content": text}]
    return tuple(engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True))


async def greedy(
    engine: Engine,
    prompt: tuple[int, ...],
    adapter: AdapterRef | None = None,
    n: int = 12,
    exact: bool = False,
) -> list[int]:
    """The generated ids of one greedy sequence (`exact`: exactly `n` of them)."""
    params = SamplingParams(max_tokens=n, temperature=0.0, min_tokens=n if exact else 0)
    request = GenerationRequest(prompt, params, adapter)
    return [t for d in [d async for d in engine.stream(request)] for t in d.token_ids]


async def token_conversation(
    engine: Engine, adapter: AdapterRef | None = None, turns: int = 4, n: int = 12
) -> list[list[int]]:
    """Each turn's reply ids; the next prompt continues the last one's exact tokens."""
    prompt = first_prompt(engine)
    replies: list[list[int]] = []
    for turn in range(turns):
        reply = await greedy(engine, prompt, adapter, n)
        replies.append(reply)
        stop = reply[-1] in engine.tokenizer.eos_token_ids
        prompt += tuple(reply[:-1] if stop else reply) + user_turn(engine, USERS[(turn + 1) % 4])
    return replies


async def text_conversation(
    engine: Engine, adapter: AdapterRef | None = None, turns: int = 4
) -> list[list[int]]:
    """Each turn's reply ids, with the history rendered as text by the chat template."""
    messages = [{"role": "user", "content": USERS[0]}]
    replies: list[list[int]] = []
    for turn in range(turns):
        prompt = engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        reply = await greedy(engine, tuple(prompt), adapter)
        replies.append(reply)
        text = engine.tokenizer.decode([t for t in reply if t not in (1, 106)])
        messages += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": USERS[(turn + 1) % 4]},
        ]
    return replies


def hits(engine: Engine) -> int:
    """Prompts that reused a stored prefix so far."""
    return engine.stats().prefix_cache_hits


async def test_token_conversations_match_the_uncached_engine_and_hit_every_later_turn(
    engines: tuple[Engine, Engine],
) -> None:
    on, off = engines
    before, reused = hits(on), on.stats().prefix_cache_reused_tokens
    assert await token_conversation(on) == await token_conversation(off)
    assert hits(on) - before == 3, "turns 2-4 should each start from the turn before"
    assert on.stats().prefix_cache_reused_tokens - reused > 3 * len(first_prompt(on))
    assert off.stats().prefix_cache_hits == off.stats().prefix_cache_entries == 0


async def test_text_conversations_match_for_two_adapters_and_the_base(
    engines: tuple[Engine, Engine], root: Path, tiny_model_dir: Path
) -> None:
    on, off = engines
    a = ref(publish_random(root, "ada", tiny_model_dir, rank=4, seed=1))
    b = ref(publish_random(root, "bo", tiny_model_dir, rank=8, num_layers=4, seed=2))
    before = hits(on)
    found = [await text_conversation(on, adapter) for adapter in (a, b, None)]
    assert found == [await text_conversation(off, adapter) for adapter in (a, b, None)]
    assert len({tuple(map(tuple, f)) for f in found}) == 3, "the adapters should change replies"
    assert hits(on) - before >= 9, "every later turn shares at least the earlier prompt"


async def test_a_batch_mixing_cached_and_uncached_rows_matches(
    engines: tuple[Engine, Engine], root: Path, tiny_model_dir: Path
) -> None:
    on, off = engines
    a = ref(publish_random(root, "mix", tiny_model_dir, rank=4, seed=5))
    start = first_prompt(on, "a question asked twice")
    cached = [(start, None), (start, a)]
    for prompt, adapter in cached:
        await greedy(on, prompt, adapter)
    later = [(p + tuple(await greedy(off, p, ad)) + user_turn(on, "go on"), ad) for p, ad in cached]
    fresh = [(first_prompt(on, "something new entirely"), None), (first_prompt(on, "hi"), a)]
    rows = [*later, *fresh]
    expected = [await greedy(off, p, ad, 16) for p, ad in rows]
    before, misses = hits(on), on.stats().prefix_cache_misses
    together = await asyncio.gather(*(greedy(on, p, ad, 16) for p, ad in rows))
    assert list(together) == expected
    assert hits(on) - before == 2
    assert on.stats().prefix_cache_misses - misses == 2
    assert any(size >= 2 for size, _ in on.stats().batch_sizes)


async def test_a_new_adapter_version_never_reuses_the_old_versions_entries(
    engines: tuple[Engine, Engine], root: Path, tiny_model_dir: Path
) -> None:
    on, off = engines
    old = publish_random(root, "hot", tiny_model_dir, rank=4, seed=7)
    new = publish_random(root, "hot", tiny_model_dir, run=old.manifest.run, step=200, seed=8)
    assert old.manifest.persona == new.manifest.persona
    assert old.manifest.key != new.manifest.key
    prompt = first_prompt(on, "the same words for both versions")
    reply = await greedy(on, prompt, ref(old))
    follow = prompt + tuple(reply) + user_turn(on, "and then?")
    before = hits(on)
    assert await greedy(on, follow, ref(new)) == await greedy(off, follow, ref(new))
    assert hits(on) == before, "the new version started from the old version's cache"
    assert await greedy(on, follow, ref(old)) == await greedy(off, follow, ref(old))
    assert hits(on) == before + 1, "the old version should still reuse its own entry"


async def test_the_base_and_an_adapter_do_not_share_entries(
    engines: tuple[Engine, Engine], root: Path, tiny_model_dir: Path
) -> None:
    on, _ = engines
    adapter = ref(publish_random(root, "apart", tiny_model_dir, rank=4, seed=9))
    prompt = first_prompt(on, "asked of the base model first")
    reply = await greedy(on, prompt)
    follow = prompt + tuple(reply) + user_turn(on, "more")
    before = hits(on)
    await greedy(on, follow, adapter)
    assert hits(on) == before
    await greedy(on, follow)
    assert hits(on) == before + 1


async def test_eviction_keeps_the_byte_budget(make_engine: Callable[..., Engine]) -> None:
    probe = make_engine(prefix_cache_bytes=BUDGET)
    probe.start()
    try:
        await greedy(probe, first_prompt(probe, "one"), n=8, exact=True)
        one = probe.stats().prefix_cache_bytes
    finally:
        await probe.aclose()
    assert one > 0
    assert len({len(first_prompt(probe, t)) for t in ("one", "two", "six", "ten")}) == 1
    budget = int(one * 2.5)
    engine = make_engine(prefix_cache_bytes=budget)
    engine.start()
    try:
        for text in ("one", "two", "six", "ten"):
            await greedy(engine, first_prompt(engine, text), n=8, exact=True)
            stats = engine.stats()
            assert 0 < stats.prefix_cache_bytes <= budget
        assert stats.prefix_cache_evictions == 2
        assert stats.prefix_cache_entries == 2
        assert stats.prefix_cache_budget_bytes == budget
        # The oldest conversations left first: "one" misses now, "ten" hits.
        misses, found = stats.prefix_cache_misses, stats.prefix_cache_hits
        for text in ("one", "ten"):
            prompt = first_prompt(engine, text)
            await greedy(engine, prompt + user_turn(engine, "next"), n=2)
        assert engine.stats().prefix_cache_misses == misses + 1
        assert engine.stats().prefix_cache_hits == found + 1
    finally:
        await engine.aclose()


async def test_an_unloaded_adapters_entries_are_dropped(
    engines: tuple[Engine, Engine], root: Path, tiny_model_dir: Path
) -> None:
    on, _ = engines
    adapter = ref(publish_random(root, "gone", tiny_model_dir, rank=4, seed=11))
    await greedy(on, first_prompt(on, "remember me"), adapter)
    held = on.stats().prefix_cache_entries
    await on.unload_adapter(adapter.manifest.key)
    assert on.stats().prefix_cache_entries == held - 1


async def test_sliding_windows_reuse_only_what_is_still_valid(
    make_engine: Callable[..., Engine], small_window_dir: Path
) -> None:
    on = make_engine(prefix_cache_bytes=BUDGET, model_dir=small_window_dir)
    off = make_engine(prefix_cache_bytes=0, model_dir=small_window_dir)
    on.start()
    off.start()
    try:
        assert len(first_prompt(on)) < SMALL_WINDOW, "turn 1 should fit the window"
        # Turn 1 fits the window; later turns wrap it and continue a whole stored entry.
        assert await token_conversation(on, n=10) == await token_conversation(off, n=10)
        assert hits(on) == 3
        # Of a wrapped conversation only the last prompt and its reply stay (the rest is implied).
        assert on.stats().prefix_cache_entries == 2
        # A prompt that leaves a wrapped entry before its end cannot reuse it: recomputed.
        long = first_prompt(on, USERS[1] + " " + USERS[2])
        assert len(long) > SMALL_WINDOW
        reply = await greedy(on, long, n=6)
        branch = long[:-3] + user_turn(on, "a different ending")
        misses = on.stats().prefix_cache_misses
        assert await greedy(on, branch) == await greedy(off, branch)
        assert on.stats().prefix_cache_misses == misses + 1
        # The same history continued exactly still hits.
        follow = long + tuple(reply) + user_turn(on, "go on")
        before = hits(on)
        assert await greedy(on, follow) == await greedy(off, follow)
        assert hits(on) == before + 1
    finally:
        await on.aclose()
        await off.aclose()


async def test_a_resent_prompt_reuses_all_but_its_last_token(
    engines: tuple[Engine, Engine],
) -> None:
    on, off = engines
    prompt = first_prompt(on, "say that again, exactly the same way please")
    first = await greedy(on, prompt)
    before, reused = hits(on), on.stats().prefix_cache_reused_tokens
    again = await greedy(on, prompt)
    assert again == first == await greedy(off, prompt)
    assert hits(on) == before + 1
    assert on.stats().prefix_cache_reused_tokens - reused == len(prompt) - 1


async def test_a_steered_turn_is_another_prefix_and_matches(engines: tuple[Engine, Engine]) -> None:
    from server.api.guarded import steer_messages

    on, off = engines
    messages = [{"role": "user", "content": "a question the guard will steer, asked plainly"}]
    plain = tuple(on.tokenizer.apply_chat_template(messages, add_generation_prompt=True))
    await greedy(on, plain)
    steered_messages = steer_messages(messages, "Answer kindly and keep it safe.")
    steered = tuple(on.tokenizer.apply_chat_template(steered_messages, add_generation_prompt=True))
    shared = common_prefix(plain, steered, len(steered))
    assert MIN_REUSE <= shared < len(plain) - 1, "guidance goes inside the last user turn"
    before, reused = hits(on), on.stats().prefix_cache_reused_tokens
    assert await greedy(on, steered) == await greedy(off, steered)
    assert hits(on) == before + 1
    assert on.stats().prefix_cache_reused_tokens - reused == shared


async def test_logprobs_after_a_hit_match_and_scoring_leaves_the_cache_alone(
    engines: tuple[Engine, Engine],
) -> None:
    from server.engine.engine import ScoreRequest

    on, off = engines
    prompt = first_prompt(on, "a turn whose next turn asks for logprobs")
    follow = prompt + tuple(await greedy(on, prompt)) + user_turn(on, "and the odds?")
    params = SamplingParams(max_tokens=6, temperature=0.0, logprobs=True, top_logprobs=3)
    before = hits(on)
    found = [
        [d async for d in engine.stream(GenerationRequest(follow, params))] for engine in (on, off)
    ]
    assert hits(on) == before + 1
    cached, fresh = ([lp for d in deltas for lp in d.logprobs] for deltas in found)
    assert [lp.token for lp in cached] == [lp.token for lp in fresh]
    for a, b in zip(cached, fresh, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert [t for t, _, _ in a.top] == [t for t, _, _ in b.top]
    stats = on.stats()
    score = ScoreRequest(follow, start=len(prompt), top_logprobs=2)
    assert await on.score(score) == await off.score(score)
    after = on.stats()
    assert (after.prefix_cache_hits, after.prefix_cache_misses, after.prefix_cache_entries) == (
        stats.prefix_cache_hits,
        stats.prefix_cache_misses,
        stats.prefix_cache_entries,
    )
