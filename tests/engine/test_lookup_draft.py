"""Prompt-lookup drafts on the tiny model: greedy replies with drafts on equal those without.

The oracle is an engine with drafts off, on a fresh copy of the same weights. The tiny model's
random weights never repeat themselves, so real drafts would always be empty; these tests swap in
a draft source that knows the oracle's reply and proposes it whole, with its first token wrong
(all rejected) or with a later token wrong (part accepted). Each case also checks that drafts
were fed and accepted as planned, so an engine that never speculates cannot pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from adapter_files import publish_random

import server.engine.batch as batch_module
from server.engine.engine import AdapterRef, Engine, GenerationRequest, SamplingParams
from tests.engine.conftest import SMALL_WINDOW

DRAFT = 4
PROMPTS = (
    "one two three four, one two three four, one two",
    "The old lighthouse keeper climbed the stairs every evening, and on the last night",
    "<start_of_turn>user\nList the days of the week twice.<end_of_turn>\n<start_of_turn>model\n",
    "def add(a, b):\n    return a + b\n\ndef add(a, b):\n",
)
"""Sliding window of the small-window copy: a 40-token reply wraps it."""


class KnownDrafts:
    """A draft source that continues any context that is a prefix of a known sequence."""

    def __init__(self, wrong_at: int | None = None) -> None:
        self.sequences: list[tuple[int, ...]] = []
        self.wrong_at = wrong_at
        """Index in each draft whose token is replaced by a wrong one (None: all right)."""

    def __call__(self, context: Sequence[int], size: int) -> list[int]:
        """Up to `size` tokens of the known sequence `context` starts."""
        for known in self.sequences:
            if len(known) > len(context) and known[: len(context)] == tuple(context):
                draft = list(known[len(context) : len(context) + size])
                if self.wrong_at is not None and self.wrong_at < len(draft):
                    draft[self.wrong_at] = 5001 if draft[self.wrong_at] == 5000 else 5000
                return draft
        return []


@pytest.fixture
def known(monkeypatch: pytest.MonkeyPatch) -> KnownDrafts:
    """Right drafts for every sequence a test registers."""
    source = KnownDrafts()
    monkeypatch.setattr(batch_module, "lookup_draft", source)
    return source


@pytest.fixture(scope="module")
def engines(make_engine: Callable[..., Engine]) -> Iterator[tuple[Engine, Engine]]:
    """(drafts on, drafts off) on the tiny model, both started, prefix cache on."""
    pair = (
        make_engine(lookup_draft=DRAFT, prefix_cache_bytes=64 << 20),
        make_engine(prefix_cache_bytes=64 << 20),
    )
    for engine in pair:
        engine.start()
    yield pair
    for engine in pair:
        asyncio.run(engine.aclose())


async def reply(
    engine: Engine,
    prompt: tuple[int, ...],
    n: int,
    adapter: AdapterRef | None = None,
    **fields: object,
) -> list[int]:
    """The generated ids of one greedy sequence of at most `n` tokens."""
    params = SamplingParams(max_tokens=n, temperature=0.0, **fields)  # type: ignore[arg-type]
    request = GenerationRequest(prompt, params, adapter)
    return [t for d in [d async for d in engine.stream(request)] for t in d.token_ids]


def encode(engine: Engine, text: str) -> tuple[int, ...]:
    """BOS and the text's ids."""
    return tuple(engine.tokenizer.encode(text))


def accepted(engine: Engine) -> int:
    """Draft tokens the engine has accepted so far."""
    return engine.stats().lookup_accepted_tokens


async def oracle(
    off: Engine,
    known: KnownDrafts,
    prompt: tuple[int, ...],
    n: int,
    adapter: AdapterRef | None = None,
) -> list[int]:
    """The engine without drafts' reply, registered as a known sequence."""
    ids = await reply(off, prompt, n, adapter)
    known.sequences.append(prompt + tuple(ids))
    return ids


@pytest.mark.parametrize(("wrong_at", "agrees"), [(None, True), (2, True), (0, False)])
async def test_greedy_replies_match_the_engine_without_drafts(
    engines: tuple[Engine, Engine], known: KnownDrafts, wrong_at: int | None, agrees: bool
) -> None:
    on, off = engines
    known.wrong_at = wrong_at
    before = on.stats()
    for text in PROMPTS:
        for n in (1, 7, 32):
            prompt = encode(on, text)
            expected = await oracle(off, known, prompt, n)
            assert await reply(on, prompt, n) == expected, (text, n)
    after = on.stats()
    assert after.lookup_draft_tokens > before.lookup_draft_tokens
    took = after.lookup_accepted_tokens - before.lookup_accepted_tokens
    steps, tokens = after.steps - before.steps, after.completion_tokens - before.completion_tokens
    if agrees:
        assert took > 0
        assert steps < tokens, "accepted drafts should save decode steps"
    else:
        assert took == 0
    assert off.stats().lookup_draft_tokens == 0


async def test_a_stream_that_gains_company_mid_reply_still_matches(
    engines: tuple[Engine, Engine], known: KnownDrafts
) -> None:
    on, off = engines
    first, second = encode(on, PROMPTS[0]), encode(on, PROMPTS[3])

    async def late(engine: Engine) -> list[int]:
        await asyncio.sleep(0.05)
        return await reply(engine, second, 24)

    theirs = await asyncio.gather(reply(off, first, 64), late(off))
    known.sequences += [first + tuple(theirs[0]), second + tuple(theirs[1])]
    before = accepted(on)
    ours = await asyncio.gather(reply(on, first, 64), late(on))
    assert list(ours) == list(theirs)
    assert accepted(on) > before


async def test_a_stream_on_an_adapter_matches_and_drafts_go_through_its_lora(
    engines: tuple[Engine, Engine],
    known: KnownDrafts,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    on, off = engines
    ckpt = publish_random(tmp_path, "ada", tiny_model_dir, rank=4, seed=1)
    adapter = AdapterRef(ckpt.manifest, ckpt.path)
    prompt = encode(on, PROMPTS[1])
    plain = await reply(off, prompt, 32)
    expected = await oracle(off, known, prompt, 32, adapter)
    assert expected != plain, "the adapter should change the reply"
    before = accepted(on)
    assert await reply(on, prompt, 32, adapter) == expected
    assert accepted(on) > before


async def test_rows_that_need_per_token_work_never_take_drafts(
    engines: tuple[Engine, Engine], known: KnownDrafts
) -> None:
    on, off = engines
    prompt = encode(on, PROMPTS[0])
    await oracle(off, known, prompt, 24)
    before = on.stats().lookup_draft_tokens
    for fields in ({"logprobs": True, "top_logprobs": 2}, {"stop": ("three",)}, {"min_tokens": 3}):
        assert await reply(on, prompt, 24, **fields) == await reply(off, prompt, 24, **fields)
    assert on.stats().lookup_draft_tokens == before


async def test_the_prefix_cache_stores_a_drafted_reply_and_the_next_turn_continues_it(
    engines: tuple[Engine, Engine], known: KnownDrafts
) -> None:
    on, off = engines
    prompt = encode(on, PROMPTS[3])
    first = await oracle(off, known, prompt, 40)
    before = accepted(on)
    assert await reply(on, prompt, 40) == first
    assert accepted(on) > before
    hits = on.stats().prefix_cache_hits
    follow = prompt + tuple(first) + encode(on, " and again")[1:]
    assert await reply(on, follow, 24) == await reply(off, follow, 24)
    assert on.stats().prefix_cache_hits == hits + 1, "the stored reply should be continued"


async def test_drafts_stop_before_a_sliding_window_wraps_and_replies_still_match(
    make_engine: Callable[..., Engine], small_window_dir: Path, known: KnownDrafts
) -> None:
    on = make_engine(lookup_draft=DRAFT, model_dir=small_window_dir)
    off = make_engine(model_dir=small_window_dir)
    for engine in (on, off):
        engine.start()
    try:
        prompt = encode(on, PROMPTS[0])
        assert len(prompt) < SMALL_WINDOW
        expected = await oracle(off, known, prompt, 40)
        assert await reply(on, prompt, 40) == expected
        assert on.stats().lookup_accepted_tokens > 0
        # The reply wrapped the window: the drafted tokens all fit before it.
        assert on.stats().lookup_draft_tokens < SMALL_WINDOW
    finally:
        for engine in (on, off):
            await engine.aclose()
