"""The fine-tuning API through the official SDK, against the real app and a real trainer."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx2
import msgspec
import openai
import pytest
from job_helpers import FAST, dataset, wait_status
from openai import AsyncOpenAI
from openai.types import FileObject
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from adapters.training.events import Start
from data.home import personas_dir
from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings

pytestmark = [pytest.mark.mlx, pytest.mark.serial]


async def test_a_persona_job_trains_serves_and_reports_like_openai(
    client: AsyncOpenAI, http: httpx2.AsyncClient
) -> None:
    upload = await client.files.create(file=("pip.jsonl", dataset()), purpose="fine-tune")
    FileObject.model_validate((await http.get(f"/v1/files/{upload.id}")).json())
    assert (upload.purpose, upload.bytes, upload.filename) == (
        "fine-tune",
        len(dataset()),
        "pip.jsonl",
    )

    job = await client.fine_tuning.jobs.create(
        model="pip",
        training_file=upload.id,
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": 2.0}
            },
        },
        metadata={"purpose": "test"},
        suffix="gears",  # as OpenAI takes it with any model: here it labels the run
        extra_body=FAST,
    )
    assert job.status == "validating_files"
    assert job.user_provided_suffix == "gears"
    assert job.hyperparameters.n_epochs == 2
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(2.0)
    done = await wait_status(client, job.id, ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    FineTuningJob.model_validate((await http.get(f"/v1/fine_tuning/jobs/{job.id}")).json())
    assert done.fine_tuned_model is not None
    assert done.fine_tuned_model.startswith("pip@run-")
    assert done.fine_tuned_model.endswith("-gears")  # pip@run-1-gears, a model id served
    assert done.trained_tokens is not None
    assert done.trained_tokens > 0
    assert done.metadata == {"purpose": "test"}

    listed = [j.id async for j in client.fine_tuning.jobs.list(limit=5)]
    assert listed == [job.id]

    events = [e async for e in client.fine_tuning.jobs.list_events(job.id, limit=3)]
    assert events[0].message == "The job has successfully completed"  # newest first
    raw = (await http.get(f"/v1/fine_tuning/jobs/{job.id}/events?limit=100")).json()["data"]
    for item in raw:
        FineTuningJobEvent.model_validate(item)
    steps = [e["data"] for e in raw if e["type"] == "metrics" and e["data"]["event"] == "step"]
    steps.sort(key=lambda s: s["step"])
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    start = next(e["data"] for e in raw if e["data"] and e["data"].get("event") == "start")
    assert start["dataset"]["train_rows"] + start["dataset"]["valid_rows"] == 10
    assert msgspec.convert(start, Start).total_steps == len(steps)  # the trainer's own event

    checkpoints = [c async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
    assert checkpoints, "no checkpoints"
    first = checkpoints[0]
    FineTuningJobCheckpoint.model_validate(first.model_dump())
    assert first.fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:{first.step_number}"
    assert first.step_number == max(c.step_number for c in checkpoints)
    assert first.metrics.train_loss is not None

    models = {m.id async for m in client.models.list()}
    assert done.fine_tuned_model in models
    assert first.fine_tuned_model_checkpoint in models
    reply = await client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "Tell me about oil."}]
    )
    assert reply.model_extra is not None
    assert reply.model_extra["persona_adapter"] == first.fine_tuned_model_checkpoint.split("@")[1]

    (result_id,) = done.result_files
    result = await client.files.retrieve(result_id)
    assert result.purpose == "fine-tune-results"
    content = (await client.files.content(result_id)).text
    rows = list(csv.DictReader(io.StringIO(content)))
    assert [int(r["step"]) for r in rows] == [s["step"] for s in steps]
    assert float(rows[-1]["train_loss"]) == pytest.approx(steps[-1]["train_loss"], rel=1e-4)

    with pytest.raises(openai.BadRequestError) as refused:
        await client.fine_tuning.jobs.cancel(job.id)
    assert "already succeeded" in refused.value.message


async def test_the_base_model_with_a_suffix_makes_a_new_persona(
    client: AsyncOpenAI, base: str
) -> None:
    system = "You are Cog, a tidy clockwork mouse."
    upload = await client.files.create(file=("cog.jsonl", dataset(system)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(
        model=base,
        training_file=upload.id,
        suffix="cog",
        hyperparameters={"n_epochs": 1},
        extra_body=FAST,
    )
    assert job.model_extra is not None
    assert job.model_extra["persona"] == "cog"
    done = await wait_status(client, job.id, ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    persona = (await client.get("/personas/cog", cast_to=httpx2.Response)).json()
    assert persona["system_prompt"] == system
    assert persona["data_files"] == ["train.jsonl"]
    assert done.fine_tuned_model in {m.id async for m in client.models.list()}


async def test_bad_requests_get_the_envelope(
    client: AsyncOpenAI, http: httpx2.AsyncClient, base: str
) -> None:
    upload = await client.files.create(file=("a.jsonl", dataset()), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError) as unknown_model:
        await client.fine_tuning.jobs.create(model="nobody", training_file=upload.id)
    assert unknown_model.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as unknown_file:
        await client.fine_tuning.jobs.create(model="pip", training_file="file-" + "0" * 24)
    assert unknown_file.value.param == "training_file"
    with pytest.raises(openai.BadRequestError) as method:
        await client.fine_tuning.jobs.create(
            model="pip", training_file=upload.id, method={"type": "reinforcement"}
        )
    assert "'reinforcement' is not served" in method.value.message
    with pytest.raises(openai.BadRequestError) as rank:
        await client.fine_tuning.jobs.create(
            model="pip", training_file=upload.id, extra_body={"rank": 0}
        )
    assert "rank must be >= 1" in rank.value.message
    with pytest.raises(openai.BadRequestError) as label:
        await client.fine_tuning.jobs.create(
            model="pip", training_file=upload.id, suffix="Not A Label"
        )
    assert label.value.param == "suffix"
    assert "labels the run of pip" in label.value.message
    with pytest.raises(openai.BadRequestError):  # checked before the new persona is written
        await client.fine_tuning.jobs.create(
            model=base, training_file=upload.id, suffix="ghost", extra_body={"rank": 0}
        )
    assert not (personas_dir() / "ghost").exists()
    with pytest.raises(openai.BadRequestError) as no_suffix:
        await client.fine_tuning.jobs.create(model=base, training_file=upload.id)
    assert no_suffix.value.param == "suffix"
    with pytest.raises(openai.BadRequestError) as purpose:
        await client.files.create(file=("a.jsonl", dataset()), purpose="assistants")
    assert purpose.value.param == "purpose"
    bad = b'{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n'
    with pytest.raises(openai.BadRequestError) as checked:
        await client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    assert "line 1: " in checked.value.message
    assert "line 2: " in checked.value.message
    assert [f.id async for f in client.files.list()] == [upload.id]  # nothing of it was kept
    second = await client.files.create(file=("b.jsonl", dataset()), purpose="fine-tune")
    assert [f.id async for f in client.files.list(order="asc", limit=1)] == [upload.id, second.id]
    bad_order = await http.get("/v1/files?order=sideways")
    assert bad_order.status_code == 400
    assert bad_order.json()["error"]["param"] == "order"
    await client.files.delete(second.id)

    await client.files.delete(upload.id)
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(upload.id)
    with pytest.raises(openai.NotFoundError):
        await client.files.content(upload.id)
    with pytest.raises(openai.NotFoundError):
        await client.fine_tuning.jobs.create(model="pip", training_file=upload.id)
    with pytest.raises(openai.NotFoundError) as job:
        await client.fine_tuning.jobs.retrieve("ftjob-nothing")
    assert job.value.body is not None


async def test_an_upload_over_the_limit_is_413(
    settings: ServerSettings, engine: Any, catalog: Catalog, running: Any
) -> None:
    app = create_app(msgspec.structs.replace(settings, max_file_bytes=100), engine, catalog=catalog)
    async with (
        running(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://localhost"
        ) as http,
    ):
        client = AsyncOpenAI(
            base_url="http://localhost/v1", api_key="x", http_client=http, max_retries=0
        )
        with pytest.raises(openai.APIStatusError) as too_big:
            await client.files.create(file=("a.jsonl", dataset()), purpose="fine-tune")
    assert too_big.value.status_code == 413
    assert too_big.value.body["code"] == "file_too_large"  # type: ignore[index]


async def test_files_that_break_the_cards_limits_fail_the_job_while_validating(
    client: AsyncOpenAI,
) -> None:
    long = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "Tell me everything."},
                {"role": "assistant", "content": "Whirr " * 80},
            ]
        }
    )
    upload = await client.files.create(
        file=("long.jsonl", dataset() + long.encode() + b"\n"), purpose="fine-tune"
    )
    job = await client.fine_tuning.jobs.create(
        model="pip", training_file=upload.id, extra_body=FAST | {"max_seq_length": 64}
    )
    failed = await wait_status(client, job.id, ("failed", "succeeded"))
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "invalid_training_file"
    assert failed.error.message.splitlines()[1].startswith("line 11: ")
    assert "max_seq_length 64" in failed.error.message
    assert failed.model_extra is not None
    assert failed.model_extra["run"] is None  # the trainer never started
