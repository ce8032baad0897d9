"""Run one generation for a handler: stream or collect it, count it, stop it when the client goes.

Nothing here touches MLX: the engine's own thread does the work and this module only awaits its
async iterator. A non-streaming request races its generation against the client's disconnect,
so a caller that hangs up frees its batch row within one decode step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.types import Receive

from server.engine.types import (
    AdapterError,
    ContextLengthError,
    Delta,
    GenerationRequest,
    InvalidParams,
    ScoreRequest,
    TokenLogprob,
)
from server.errors import AppError, InvalidRequestError
from server.errors import ContextLengthError as ContextTooLongError
from server.metrics import ServerMetrics

if TYPE_CHECKING:
    from server.engine.engine import Engine

log = logging.getLogger("persona.server")


class AdapterUnavailableError(AppError):
    """The adapter a model id names could not be loaded; the previous version keeps serving."""

    default_code = "adapter_unavailable"


class ClientDisconnectedError(Exception):
    """The client hung up before the reply was complete."""


@dataclass(frozen=True)
class Canned:
    """A reply already known (an author's reply, or one the guard held back to check): it is
    streamed in word-sized pieces like a generated one, without touching the engine."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    adapter_version: str | None = None


@dataclass(frozen=True)
class Job:
    """One generation to run, with the names it is counted under."""

    request: GenerationRequest
    label: str
    """Persona name or base model id, for metrics."""
    persona: str | None
    canned: Canned | None = None
    """Set when the reply is already known; the engine is not asked."""


@dataclass(frozen=True)
class Outcome:
    """A finished generation."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: tuple[TokenLogprob, ...]
    adapter_version: str | None


class Runner:
    """Runs jobs on the engine and records their metrics."""

    def __init__(self, engine: Engine, metrics: ServerMetrics) -> None:
        self.engine = engine
        self.metrics = metrics

    async def stream(self, job: Job) -> AsyncIterator[Delta]:
        """The engine's deltas for a job; closing this iterator cancels the sequence."""
        m = self.metrics
        start = time.perf_counter()
        first = True
        version: str | None = None
        adapter = job.request.adapter
        if adapter is not None:
            version = adapter.manifest.version
        m.running.inc()
        if job.persona is not None:
            m.adapter_started(job.persona, version)
        last: Delta | None = None
        source: AsyncIterator[Delta] | None = None
        try:
            with _client_errors():
                source = (
                    canned_deltas(job.canned)
                    if job.canned is not None
                    else self.engine.stream(job.request)
                )
                async for delta in source:
                    if first:
                        m.ttft.labels(job.label).observe(time.perf_counter() - start)
                        first = False
                    last = delta
                    yield delta
        finally:
            await _close(source)
            m.running.dec()
            if job.persona is not None:
                m.adapter_finished(job.persona, version)
            if last is not None and job.canned is None:
                m.prompt_tokens.labels(job.label).inc(last.prompt_tokens)
                m.generation_tokens.labels(job.label).inc(last.token_count)
            if last is not None:
                if last.finish_reason is not None:
                    m.finished.labels(last.finish_reason).inc()
                    m.e2e.labels(job.label).observe(time.perf_counter() - start)
                else:
                    m.finished.labels("abort").inc()

    async def collect(self, jobs: list[Job], receive: Receive) -> list[Outcome]:
        """Run jobs side by side to their ends (one Outcome each, in order).

        Raises ClientDisconnectedError if the client hangs up first; the first job that fails
        cancels the others and its error is raised.
        """
        work = asyncio.create_task(self._gather_all(jobs))
        gone = asyncio.create_task(wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if work in done:
            return work.result()
        raise ClientDisconnectedError

    async def open(
        self, jobs: list[Job], receive: Receive
    ) -> AsyncGenerator[tuple[int, Delta], None] | None:
        """Start streaming jobs side by side: (job index, delta) pairs as they come.

        Every job's first delta is awaited before answering, so a bad adapter or parameter
        still becomes a 4xx; None means the client left first.
        """
        streams = [self.stream(job) for job in jobs]
        heads = asyncio.ensure_future(
            asyncio.gather(*(anext(s) for s in streams), return_exceptions=True)
        )
        gone = asyncio.create_task(wait_disconnect(receive))
        done: set[Any] = set()
        try:
            done, _ = await asyncio.wait({heads, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (heads, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if heads not in done:
            # A cancelled gather ends with a CancelledError *exception*, not as cancelled(), so
            # which task finished is what tells that the client left: normal, not an error.
            log.debug("a streaming client left before its first token")
            for stream in streams:
                await _close(stream)
            return None
        firsts = heads.result()
        failed = next((f for f in firsts if isinstance(f, BaseException)), None)
        if failed is not None:
            for stream in streams:
                await _close(stream)
            if isinstance(failed, StopAsyncIteration):
                raise RuntimeError("the engine ended a sequence without a delta")
            raise failed
        return merge(firsts, streams)

    async def _gather_all(self, jobs: list[Job]) -> list[Outcome]:
        tasks = [asyncio.create_task(self._gather(job)) for job in jobs]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _gather(self, job: Job) -> Outcome:
        pieces: list[str] = []
        logprobs: list[TokenLogprob] = []
        last: Delta | None = None
        async for delta in self.stream(job):
            pieces.append(delta.text)
            logprobs.extend(delta.logprobs)
            last = delta
        if last is None:
            raise RuntimeError("the engine ended a sequence without a final delta")
        return Outcome(
            text="".join(pieces),
            finish_reason=last.finish_reason or "stop",
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.token_count,
            logprobs=tuple(logprobs),
            adapter_version=last.adapter_version,
        )


async def canned_deltas(canned: Canned) -> AsyncIterator[Delta]:
    """A known reply as deltas of a word each (spaces kept), the last carrying the finish."""
    words = re.findall(r"\S+\s*|\s+", canned.text) or [""]
    for index, word in enumerate(words):
        done = index == len(words) - 1
        yield Delta(
            text=word,
            token_count=canned.completion_tokens if done else 0,
            prompt_tokens=canned.prompt_tokens,
            finish_reason=canned.finish_reason if done else None,
            adapter_version=canned.adapter_version,
        )


async def merge(
    firsts: list[Delta], streams: list[AsyncIterator[Delta]]
) -> AsyncGenerator[tuple[int, Delta], None]:
    """Interleave streams whose first deltas were already read, as (stream index, delta).

    Closing the merged iterator closes every stream, which cancels their sequences.
    """
    queue: asyncio.Queue[tuple[int, Delta | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, first: Delta, stream: AsyncIterator[Delta]) -> None:
        queue.put_nowait((index, first))
        try:
            if first.finish_reason is None:
                async for delta in stream:
                    queue.put_nowait((index, delta))
        except Exception as exc:
            queue.put_nowait((index, exc))
            return
        queue.put_nowait((index, None))

    tasks = [
        asyncio.create_task(pump(i, first, stream))
        for i, (first, stream) in enumerate(zip(firsts, streams, strict=True))
    ]
    running = len(tasks)
    try:
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            await _close(stream)


async def wait_disconnect(receive: Receive) -> None:
    """Return when the ASGI server reports that the client has gone."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


@contextlib.contextmanager
def _client_errors() -> Iterator[None]:
    """Engine refusals of a request become 4xx errors (an adapter, a parameter, the length)."""
    try:
        yield
    except AdapterError as exc:
        raise AdapterUnavailableError(f"the adapter could not be loaded: {exc.reason}") from None
    except InvalidParams as exc:
        raise InvalidRequestError(str(exc), param=exc.param) from None
    except ContextLengthError as exc:
        raise ContextTooLongError(str(exc), param="messages") from None


async def _close(source: Any) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


AdapterUnavailable = AdapterUnavailableError
"""Short name, as route modules import it."""


async def score(engine: Engine, request: ScoreRequest) -> tuple[TokenLogprob, ...]:
    """Teacher-force a request on the engine; its refusals become 4xx errors as for generation."""
    with _client_errors():
        return await engine.score(request)
