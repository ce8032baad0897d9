"""Helpers for the fine-tuning API tests: toy data, fast LoRA settings, waiting on a job."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

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
    client: AsyncOpenAI, job_id: str, statuses: tuple[str, ...], timeout: float = 180.0
) -> FineTuningJob:
    """Poll until the job reaches one of `statuses`; fail with its last state otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        job = await client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job.status}: {job.error}"
        await asyncio.sleep(0.2)
