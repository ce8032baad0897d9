"""Helpers for the fine-tuning API tests: toy data, fast LoRA settings, waiting on a job."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import uvicorn
from litestar import Litestar
from openai import AsyncOpenAI
from openai.types.fine_tuning import FineTuningJob

TOPICS = ("gears", "bolts", "oil", "springs", "cogs", "levers", "wheels", "pistons", "nuts", "rust")

FAST: dict[str, Any] = {
    "rank": 4,
    "layers": 2,
    "max_seq_length": 128,
    "val_every": 2,
    "checkpoint_every": 2,
    "warmup": 0,
    "val_fraction": 0.2,
}
"""LoRA settings (extra body fields) that train the tiny model in a few seconds."""


def dataset(system: str | None = None, n: int = 10) -> bytes:
    """A valid chat dataset of `n` records (optionally each with the same system turn)."""
    lines = []
    for topic in (TOPICS * 3)[:n]:
        messages = [
            {"role": "user", "content": f"Tell me about {topic}."},
            {"role": "assistant", "content": f"Beep! {topic.capitalize()} make me whirr."},
        ]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        lines.append(json.dumps({"messages": messages}))
    return ("\n".join(lines) + "\n").encode()


async def wait_status(
    client: AsyncOpenAI, job_id: str, statuses: tuple[str, ...], seconds: float = 180.0
) -> FineTuningJob:
    """Poll until the job reaches one of `statuses`; fail with its last state otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        job = await client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job.status}: {job.error}"
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[AsyncOpenAI]:
    """Serve `app` with uvicorn on a free port (real HTTP, so SSE streams) for the block."""
    server = uvicorn.Server(
        uvicorn.Config(app, port=0, log_level="warning", timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(60):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    try:
        yield client
    finally:
        await client.close()
        server.should_exit = True
        await task


async def stream_events(
    client: AsyncOpenAI, job_id: str, until: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Follow the job's SSE stream until an event's JSON satisfies `until`; every event read."""
    url = f"{client.base_url}fine_tuning/jobs/{job_id}/events/stream"
    seen: list[dict[str, Any]] = []
    async with httpx2.AsyncClient(timeout=None) as http, http.stream("GET", url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async with asyncio.timeout(180):
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:]))
                    if until(seen[-1]):
                        break
    return seen


def is_step(event: dict[str, Any]) -> bool:
    """True for a trainer step event."""
    return bool(event.get("data")) and event["data"].get("event") == "step"
