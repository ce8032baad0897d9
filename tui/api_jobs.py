"""The TUI's calls for training, evaluation and data: jobs, their event stream, data reports.

A mixin of `ApiClient`, so every failure still arrives as one `ApiError`; it names what it uses
of the client (its httpx client, error translation and the typed GET/POST) without importing it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from server.jobs.types import EvalRun, FineTuningJob, JobEvent, JobList

from .sse import SseEvent
from .wire import DataCheck, DatasetStats, SuiteBuilt

T = TypeVar("T")


def _p(name: str) -> str:
    return quote(name, safe="")


class JobsApi:
    """Fine-tuning jobs, evaluation runs and data checks on the server."""

    if TYPE_CHECKING:  # provided by ApiClient

        def translating(self) -> contextlib.AbstractContextManager[None]: ...

        sse_events: Callable[..., AsyncIterator[SseEvent]]

        async def _get(self, path: str, kind: type[T]) -> T: ...

        async def _post(self, path: str, body: bytes, kind: type[T], method: str = "POST") -> T: ...

    async def create_job(self, model: str, body: dict[str, Any]) -> FineTuningJob:
        """`POST /v1/fine_tuning/jobs` on a persona's own data on the server; `model` is the
        persona, or one of its checkpoints (`juni@run-1:best`) to start from."""
        payload = {"model": model, **body}
        return await self._post("/v1/fine_tuning/jobs", msgspec.json.encode(payload), FineTuningJob)

    async def job(self, job_id: str) -> FineTuningJob:
        """One job as it stands."""
        return await self._get(f"/v1/fine_tuning/jobs/{_p(job_id)}", FineTuningJob)

    async def jobs(self) -> list[FineTuningJob]:
        """The newest jobs, newest first."""
        return (await self._get("/v1/fine_tuning/jobs?limit=100", JobList)).data

    async def steer_job(self, job_id: str, action: str) -> FineTuningJob:
        """`cancel`, `pause` or `resume` a job."""
        return await self._post(f"/v1/fine_tuning/jobs/{_p(job_id)}/{action}", b"{}", FineTuningJob)

    async def job_events(self, job_id: str, after: str | None = None) -> AsyncIterator[JobEvent]:
        """Follow a job's event stream (every event after `after`) until the job ends."""
        path = f"/v1/fine_tuning/jobs/{_p(job_id)}/events/stream"
        async with contextlib.aclosing(self._follow(path, after)) as events:
            async for event in events:
                yield event

    async def create_eval(
        self, persona: str, models: list[str], samples: int = 1, turns: int = 0
    ) -> EvalRun:
        """Queue an evaluation of the persona's held-out suite on these model ids; `turns` > 0
        also plays its conversation scripts for that many turns (drift)."""
        body = msgspec.json.encode({"models": models, "samples": samples, "turns": turns})
        return await self._post(f"/v1/personas/{_p(persona)}/evals", body, EvalRun)

    async def eval_run(self, persona: str, run_id: str) -> EvalRun:
        """One evaluation run: status, progress and result."""
        return await self._get(f"/v1/personas/{_p(persona)}/evals/{_p(run_id)}", EvalRun)

    async def eval_events(
        self, persona: str, run_id: str, after: str | None = None
    ) -> AsyncIterator[JobEvent]:
        """Follow an evaluation's events (progress, and each reply as it is scored) until the
        run ends."""
        path = f"/v1/personas/{_p(persona)}/evals/{_p(run_id)}/events/stream"
        async with contextlib.aclosing(self._follow(path, after)) as events:
            async for event in events:
                yield event

    async def _follow(self, path: str, after: str | None) -> AsyncIterator[JobEvent]:
        """The job events of an SSE stream (those after `after`), until the server ends it."""
        params = {"after": after} if after else None
        timeout = httpx.Timeout(None, connect=3.0)
        with self.translating():
            stream = self.sse_events("GET", path, timeout, params=params)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if event.event == "fine_tuning.job.event":
                        yield msgspec.json.decode(event.data, type=JobEvent)

    async def build_suite(self, persona: str, share: float | None = None) -> SuiteBuilt:
        """Have the server hold out a share of the persona's tagged records as its eval suite."""
        body = msgspec.json.encode({"share": share} if share is not None else {})
        return await self._post(f"/v1/personas/{_p(persona)}/evals/suite", body, SuiteBuilt)

    async def cancel_eval(self, persona: str, run_id: str) -> EvalRun:
        """Stop an evaluation."""
        path = f"/v1/personas/{_p(persona)}/evals/{_p(run_id)}/cancel"
        return await self._post(path, b"{}", EvalRun)

    async def data_check(self, persona: str) -> DataCheck:
        """What `persona data check` finds in the persona's data on the server."""
        return await self._get(f"/v1/personas/{_p(persona)}/data/check", DataCheck)

    async def data_stats(self, persona: str) -> DatasetStats:
        """What `persona data stats` measures in the persona's data on the server."""
        return await self._get(f"/v1/personas/{_p(persona)}/data/stats", DatasetStats)
