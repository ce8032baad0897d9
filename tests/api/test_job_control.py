"""Steering jobs over real HTTP: the queue, pause and true resume, cancel, the SSE stream, and a
server restart in the middle of a job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest
from job_helpers import FAST, dataset, is_step, serving, stream_events, wait_status

from server.api.routes.fine_tuning import jobs_root
from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings

pytestmark = [pytest.mark.mlx, pytest.mark.serial]


def resumed(event: dict[str, Any]) -> bool:
    """The start event of a resumed run."""
    data = event.get("data") or {}
    return data.get("event") == "start" and bool(data.get("resumed_from"))


async def test_a_second_job_queues_and_pause_resume_cancel_keep_checkpoints(
    settings: ServerSettings, engine: Any, catalog: Catalog
) -> None:
    async with serving(create_app(settings, engine, catalog=catalog)) as client:
        upload = await client.files.create(file=("pip.jsonl", dataset()), purpose="fine-tune")
        long = await client.fine_tuning.jobs.create(
            model="pip", training_file=upload.id, hyperparameters={"n_epochs": 40}, extra_body=FAST
        )
        short = await client.fine_tuning.jobs.create(
            model="pip", training_file=upload.id, hyperparameters={"n_epochs": 1}, extra_body=FAST
        )
        seen = await stream_events(client, long.id, is_step)
        assert seen[0]["object"] == "fine_tuning.job.event"
        assert seen[0]["message"].startswith("Created fine-tuning job")
        assert (await client.fine_tuning.jobs.retrieve(short.id)).status == "queued"

        await client.fine_tuning.jobs.pause(long.id)
        paused = await wait_status(client, long.id, ("paused",))
        assert paused.model_extra is not None
        stopped_at = paused.model_extra["step"]
        assert stopped_at >= 1
        done = await wait_status(client, short.id, ("succeeded", "failed"))
        assert done.status == "succeeded", done.error  # the queue moved on while paused

        await client.fine_tuning.jobs.resume(long.id)
        events = await stream_events(client, long.id, resumed)
        assert events[-1]["data"]["resumed_from"] == stopped_at
        # A step of the resumed run has finished, so the cancel below keeps a later checkpoint.
        events = await stream_events(
            client, long.id, lambda e: is_step(e) and e["data"]["step"] > stopped_at
        )
        steps = [e["data"]["step"] for e in events if is_step(e)]
        assert steps == sorted(set(steps))  # no step ran twice

        await client.fine_tuning.jobs.cancel(long.id)
        cancelled = await wait_status(client, long.id, ("cancelled",))
        assert cancelled.error is None
        assert cancelled.finished_at is not None
        steps_kept = [
            c.step_number async for c in client.fine_tuning.jobs.checkpoints.list(long.id)
        ]
        assert stopped_at in steps_kept
        assert max(steps_kept) > stopped_at  # a checkpoint at the cancel, after the resume
        with pytest.raises(openai.BadRequestError):
            await client.fine_tuning.jobs.cancel(long.id)
        with pytest.raises(openai.BadRequestError):
            await client.fine_tuning.jobs.resume(short.id)


async def test_a_restart_mid_job_fails_it_resumably_and_resume_finishes_it(
    settings: ServerSettings, engine: Any, catalog: Catalog
) -> None:
    async with serving(create_app(settings, engine, catalog=catalog)) as client:
        upload = await client.files.create(file=("pip.jsonl", dataset()), purpose="fine-tune")
        job = await client.fine_tuning.jobs.create(
            model="pip", training_file=upload.id, hyperparameters={"n_epochs": 6}, extra_body=FAST
        )
        await stream_events(client, job.id, is_step)
        record = Path(jobs_root() / job.id / "job.json")
        snapshot = await asyncio.to_thread(record.read_bytes)
        assert b'"status":"running"' in snapshot
    # The server stopped: its trainer finished the step and kept a checkpoint.
    async with serving(create_app(settings, engine, catalog=catalog)) as client:
        stopped = await client.fine_tuning.jobs.retrieve(job.id)
        assert stopped.status == "failed"
        assert stopped.error is not None
        assert stopped.error.code == "server_stopped"
        assert f"/v1/fine_tuning/jobs/{job.id}/resume" in stopped.error.message
        kept = [c.step_number async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
        assert kept

        await client.fine_tuning.jobs.resume(job.id)
        done = await wait_status(client, job.id, ("succeeded", "failed"))
        assert done.status == "succeeded", done.error
        assert done.model_extra is not None
        assert done.model_extra["step"] == done.model_extra["total_steps"]
        events = [e async for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
        starts = [
            e.data for e in events if isinstance(e.data, dict) and e.data.get("event") == "start"
        ]
        assert [s.get("resumed_from") for s in starts] == [max(kept), None]  # newest first

    # A crash leaves `job.json` saying `running`; the next start marks it failed, resumable.
    await asyncio.to_thread(record.write_bytes, snapshot)
    async with serving(create_app(settings, engine, catalog=catalog)) as client:
        crashed = await client.fine_tuning.jobs.retrieve(job.id)
        assert crashed.status == "failed"
        assert crashed.error is not None
        assert crashed.error.code == "server_stopped"
