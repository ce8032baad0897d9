"""An evaluation's event stream: each reply arrives as it is scored, with how far the run got."""

from __future__ import annotations

import asyncio
import json

import httpx2
import msgspec
import pytest
from openai import AsyncOpenAI
from test_eval_jobs import suite_bytes

from data.eval.run import SampleResult

pytestmark = [pytest.mark.mlx]


def sse_data(body: str) -> list[dict]:  # type: ignore[type-arg]
    """The JSON payload of every `data:` line of an event stream."""
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]


async def test_each_reply_is_an_event_as_it_lands(
    client: AsyncOpenAI, http: httpx2.AsyncClient, base: str
) -> None:
    suite = await client.files.create(file=("suite.jsonl", suite_bytes()), purpose="evals")
    created = await http.post(
        "/v1/personas/pip/evals",
        json={"models": [base, "pip"], "suite_file": suite.id, "max_tokens": 4},
    )
    assert created.status_code == 200, created.text
    run_id = created.json()["id"]
    async with asyncio.timeout(120):
        stream = await http.get(f"/v1/personas/pip/evals/{run_id}/events/stream")
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = sse_data(stream.text)
    assert events[-1]["message"] == "Evaluation succeeded"  # the stream ends with the run
    landed = [e["data"] for e in events if e["data"] and "sample" in e["data"]]
    assert [d["total"] for d in landed] == [4] * 4
    assert sorted(d["done"] for d in landed) == [1, 2, 3, 4]
    samples = [msgspec.convert(d["sample"], SampleResult) for d in landed]
    assert sorted((s.model, s.case_id) for s in samples) == sorted(
        (m, c) for m in (base, "pip") for c in ("g-1", "i-1")
    )
    run = (await http.get(f"/v1/personas/pip/evals/{run_id}")).json()
    final = msgspec.convert(run["result"]["samples"], list[SampleResult])
    assert sorted(s.text for s in samples) == sorted(s.text for s in final)
    # Picking up after an event gives only what came after it.
    first = next(e["id"] for e in events if e["data"] and "sample" in e["data"])
    later = await http.get(
        f"/v1/personas/pip/evals/{run_id}/events/stream", params={"after": first}
    )
    assert first not in [e["id"] for e in sse_data(later.text)]
    assert len(sse_data(later.text)) < len(events)


async def test_an_unknown_run_is_a_404(http: httpx2.AsyncClient) -> None:
    reply = await http.get("/v1/personas/pip/evals/eval-nope/events/stream")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "eval_not_found"
