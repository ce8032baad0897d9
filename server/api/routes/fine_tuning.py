"""OpenAI's fine-tuning API: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
from litestar import get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from adapters.registry import Registry
from data.home import home_dir
from server.api.fine_tune_plan import plan_fine_tune
from server.errors import InvalidRequest, NotFound, error_responses
from server.jobs.fine_tuning import JobService, JobStateError, page
from server.jobs.log import EventLog
from server.jobs.types import (
    CheckpointList,
    CheckpointMetrics,
    CreateJobRequest,
    EventList,
    FineTuningJob,
    JobCheckpoint,
    JobList,
)
from server.state import ServerState

ERRORS = error_responses(400, 404)
KEEPALIVE_SECONDS = 15.0


def jobs_root() -> Path:
    """Where jobs keep their records, events and copied data."""
    return home_dir() / "fine_tuning"


def service(state: ServerState) -> JobService:
    """The job service (it starts with the app)."""
    if state.jobs is None:
        raise NotFound("fine-tuning is not available on this server")
    return state.jobs


def find_job(state: ServerState, job_id: str) -> FineTuningJob:
    """A job, or OpenAI's 404."""
    try:
        return service(state).get(job_id).job
    except KeyError:
        raise NotFound(
            f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id", code="job_not_found"
        ) from None


def _steer(state: ServerState, job_id: str, action: str) -> FineTuningJob:
    find_job(state, job_id)
    jobs = service(state)
    try:
        return getattr(jobs, action)(job_id)  # type: ignore[no-any-return]
    except JobStateError as exc:
        raise InvalidRequest(str(exc), param="fine_tuning_job_id", code="invalid_state") from None


async def sse_events(events: EventLog, after: str | None) -> AsyncIterator[ServerSentEventMessage]:
    """Each event as `event: fine_tuning.job.event` with its id, keep-alives when idle."""
    yield ServerSentEventMessage(comment="connected", data=None)
    async for event in events.follow(after, KEEPALIVE_SECONDS):
        if event is None:
            yield ServerSentEventMessage(comment="keepalive", data=None)
        else:
            data = msgspec.json.encode(event).decode()
            yield ServerSentEventMessage(data=data, event=event.object, id=event.id)


@post(
    "/v1/fine_tuning/jobs",
    status_code=200,
    summary="Create a fine-tuning job",
    tags=["fine-tuning"],
    responses=ERRORS,
)
async def create_job(state: ServerState, data: JSONBody[CreateJobRequest]) -> FineTuningJob:
    """Check the request, then queue a job; it trains once its files are validated."""
    # Off the event loop: planning reads the upload through and copies it (up to 50 MB).
    job, spec = await asyncio.to_thread(plan_fine_tune, state, data, jobs_root())
    return service(state).create(job, spec)


@get("/v1/fine_tuning/jobs", summary="List fine-tuning jobs", tags=["fine-tuning"])
async def list_jobs(
    state: ServerState, after: FromQuery[str | None] = None, limit: FromQuery[int] = 20
) -> JobList:
    """Jobs, newest first, `limit` at a time after the job `after`."""
    jobs = service(state).jobs()
    chunk, more = page(jobs, [j.id for j in jobs], after, max(1, limit))
    return JobList(chunk, more)


@get(
    "/v1/fine_tuning/jobs/{job_id:str}",
    summary="Retrieve a fine-tuning job",
    tags=["fine-tuning"],
    responses=ERRORS,
)
async def retrieve_job(state: ServerState, job_id: FromPath[str]) -> FineTuningJob:
    """One job as it stands."""
    return find_job(state, job_id)


@post(
    "/v1/fine_tuning/jobs/{job_id:str}/cancel",
    status_code=200,
    tags=["fine-tuning"],
    summary="Cancel a job",
    responses=ERRORS,
)
async def cancel_job(state: ServerState, job_id: FromPath[str]) -> FineTuningJob:
    """Stop after the current step, keeping a checkpoint; a finished job gets a 400."""
    return _steer(state, job_id, "cancel")


@post(
    "/v1/fine_tuning/jobs/{job_id:str}/pause",
    status_code=200,
    tags=["fine-tuning"],
    summary="Pause a job",
    responses=ERRORS,
)
async def pause_job(state: ServerState, job_id: FromPath[str]) -> FineTuningJob:
    """Stop after the current step with a checkpoint; resume continues exactly there."""
    return _steer(state, job_id, "pause")


@post(
    "/v1/fine_tuning/jobs/{job_id:str}/resume",
    status_code=200,
    tags=["fine-tuning"],
    summary="Resume a job",
    responses=ERRORS,
)
async def resume_job(state: ServerState, job_id: FromPath[str]) -> FineTuningJob:
    """Queue a paused (or failed) job to continue from its newest checkpoint."""
    return _steer(state, job_id, "resume")


@get(
    "/v1/fine_tuning/jobs/{job_id:str}/events",
    summary="List a job's events",
    tags=["fine-tuning"],
    responses=ERRORS,
)
async def list_events(
    state: ServerState,
    job_id: FromPath[str],
    after: FromQuery[str | None] = None,
    limit: FromQuery[int] = 20,
) -> EventList:
    """`fine_tuning.job.event` objects, newest first."""
    find_job(state, job_id)
    events, more = service(state).log(job_id).page(after, max(1, limit))
    return EventList(events, more)


@get(
    "/v1/fine_tuning/jobs/{job_id:str}/events/stream",
    summary="Follow a job's events",
    tags=["fine-tuning"],
    responses=ERRORS,
)
async def stream_events(
    state: ServerState, job_id: FromPath[str], after: FromQuery[str | None] = None
) -> ServerSentEvent:
    """Server-sent events: every event so far (after `after`), then live ones until it ends."""
    find_job(state, job_id)
    return ServerSentEvent(sse_events(service(state).log(job_id), after))


@get(
    "/v1/fine_tuning/jobs/{job_id:str}/checkpoints",
    summary="List a job's checkpoints",
    tags=["fine-tuning"],
    responses=ERRORS,
)
async def list_checkpoints(
    state: ServerState,
    job_id: FromPath[str],
    after: FromQuery[str | None] = None,
    limit: FromQuery[int] = 10,
) -> CheckpointList:
    """Each published checkpoint of the job's run as a pinned model id, newest first."""
    job = find_job(state, job_id)
    found = checkpoints_of(job, Registry(state.settings.adapters_path()))
    chunk, more = page(found, [c.id for c in found], after, max(1, limit))
    first, last = (chunk[0].id, chunk[-1].id) if chunk else (None, None)
    return CheckpointList(chunk, more, first, last)


def fine_tuning_routes() -> list[HTTPRouteHandler]:
    """The fine-tuning handlers, for `create_app` to register."""
    return [
        create_job,
        list_jobs,
        retrieve_job,
        cancel_job,
        pause_job,
        resume_job,
        list_events,
        stream_events,
        list_checkpoints,
    ]


def checkpoints_of(job: FineTuningJob, registry: Registry) -> list[JobCheckpoint]:
    """The job's run's checkpoints, newest first."""
    if job.run is None:
        return []
    found = []
    for ckpt in registry.checkpoints(job.persona, job.run):
        m = ckpt.manifest
        found.append(
            JobCheckpoint(
                id=f"ftckpt-{job.id.removeprefix('ftjob-')}-{m.step}",
                created_at=int(m.created or time.time()),
                fine_tuned_model_checkpoint=f"{job.persona}@{m.version}",
                fine_tuning_job_id=job.id,
                step_number=m.step,
                metrics=CheckpointMetrics(
                    step=float(m.step),
                    train_loss=m.metrics.get("train_loss"),
                    valid_loss=m.metrics.get("val_loss"),
                ),
            )
        )
    return sorted(found, key=lambda c: c.step_number, reverse=True)
