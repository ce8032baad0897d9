"""The prefix cache as a client sees it: a second chat turn reuses the first; /metrics says so."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI

BUDGET = 32 << 20


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[Any]:
    """A started engine on the tiny model with the prefix cache on (this module's own)."""
    from server.engine.engine import Engine

    engine = Engine.load(str(tiny_model_dir), max_batch=4, prefix_cache_bytes=BUDGET)
    engine.start()
    yield engine
    asyncio.run(engine.aclose())


def metric(text: str, name: str) -> float:
    """The value of one unlabelled metric in a Prometheus text page."""
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not in /metrics"
    return float(found.group(1))


async def test_a_second_turn_reuses_the_first_and_metrics_count_it(
    client: AsyncOpenAI, http: httpx2.AsyncClient
) -> None:
    messages: list[Any] = [{"role": "user", "content": "hello, what do you like?"}]
    first = await client.chat.completions.create(model="pip", messages=messages)
    before = (await http.get("/metrics")).text
    assert metric(before, "persona_engine_prefix_cache_entries") == 1
    assert metric(before, "persona_engine_prefix_cache_misses") == 1
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": "and why is that?"},
    ]
    second = await client.chat.completions.create(model="pip", messages=messages)
    assert second.usage is not None
    assert second.usage.prompt_tokens > 0
    after = (await http.get("/metrics")).text
    assert metric(after, "persona_engine_prefix_cache_hits") == 1
    assert metric(after, "persona_engine_prefix_cache_reused_tokens") >= 8
    assert 0 < metric(after, "persona_engine_prefix_cache_bytes") <= BUDGET
    assert metric(after, "persona_engine_prefix_cache_budget_bytes") == BUDGET
    assert metric(after, "persona_engine_prefix_cache_evictions") == 0
