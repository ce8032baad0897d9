"""A seed means the same reply, whatever else is running, and `n` choices are seeds in a row."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

STORY = [{"role": "user", "content": "Tell me a story about a boat."}]
SAMPLED = {"temperature": 0.9, "top_p": 0.95, "max_tokens": 8}


async def reply(http: httpx2.AsyncClient, body: dict[str, Any]) -> list[str]:
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return [c["message"]["content"] for c in response.json()["choices"]]


async def test_twenty_seeded_replies_are_the_same_alone_and_in_any_batch(
    http: httpx2.AsyncClient, base: str
) -> None:
    seeds = range(20)
    models = ["juni", base, "vell"]
    requests = [{"model": models[s % 3], "messages": STORY, "seed": s, **SAMPLED} for s in seeds]
    alone = [await reply(http, r) for r in requests]
    # Batched with each other, with unseeded sampled rows and with greedy `pip` rows.
    neighbours = [
        {"model": "pip", "messages": STORY},
        {"model": base, "messages": [{"role": "user", "content": "Hi"}], **SAMPLED},
        {"model": "juni", "messages": STORY, "temperature": 1.2, "max_tokens": 12},
    ]
    for start in range(0, len(requests), 4):
        group = requests[start : start + 4]
        together = await asyncio.gather(*(reply(http, r) for r in [*group, *neighbours]))
        assert together[: len(group)] == alone[start : start + 4]
    assert len({tuple(a) for a in alone}) > 10  # the seeds do sample different replies


async def test_n_choices_take_seeds_seed_seed_plus_one_and_so_on(
    http: httpx2.AsyncClient,
) -> None:
    body = {"model": "juni", "messages": STORY, **SAMPLED}
    many = await reply(http, {**body, "seed": 40, "n": 3})
    singles = [(await reply(http, {**body, "seed": 40 + k}))[0] for k in range(3)]
    assert many == singles


async def test_seed_minus_one_means_unseeded_as_llama_cpp_and_sillytavern_send_it(
    http: httpx2.AsyncClient,
) -> None:
    body = {"model": "juni", "messages": STORY, "seed": -1, **SAMPLED, "max_tokens": 16}
    replies = {tuple(await reply(http, body)) for _ in range(4)}
    assert len(replies) > 1
