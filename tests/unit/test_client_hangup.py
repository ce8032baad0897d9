"""A streaming client that hangs up before its first token is normal: no error, one debug line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.runner import Runner


class SlowRunner(Runner):
    """A runner whose engine has not produced a token yet (a long queue)."""

    def __init__(self) -> None:
        self.closed = 0

    async def stream(self, job: Any) -> AsyncIterator[Any]:
        try:
            await asyncio.sleep(3600)
            yield None
        finally:
            self.closed += 1


async def hung_up() -> dict[str, str]:
    await asyncio.sleep(0)
    return {"type": "http.disconnect"}


async def test_two_hundred_clients_hang_up_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="persona.server")
    runners = [SlowRunner() for _ in range(200)]
    results = await asyncio.gather(*(r.open([object(), object()], hung_up) for r in runners))
    assert results == [None] * 200
    assert all(r.closed == 2 for r in runners)
    records = [r for r in caplog.records if r.name == "persona.server"]
    assert len(records) == 200
    assert {r.levelno for r in records} == {logging.DEBUG}
    assert all(r.exc_info is None for r in records)
