"""`Runner.open` when the client leaves before any job's first delta: None, never an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from server.runner import Runner


class _SlowRunner(Runner):
    """Jobs whose first delta never comes; records that each stream was closed."""

    def __init__(self) -> None:
        self.closed = 0

    async def stream(self, job: Any) -> AsyncIterator[Any]:
        try:
            await asyncio.sleep(3600)
            yield job
        finally:
            self.closed += 1


async def test_a_client_gone_before_the_first_delta_gets_none() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    for jobs in (["a"], ["a", "b", "c"]):
        runner = _SlowRunner()
        assert await asyncio.wait_for(runner.open(jobs, receive), 5) is None  # type: ignore[arg-type]
        assert runner.closed == len(jobs)
