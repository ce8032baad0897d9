"""DPO and ORPO fine-tuning jobs, and jobs that start from a checkpoint, via the official SDK."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import openai
import pytest
from job_helpers import FAST, TOPICS, dataset, wait_status
from openai import AsyncOpenAI
from openai.types.fine_tuning import FineTuningJob

from adapters.registry import Registry, parse_model_id
from adapters.training.record import read_record
from server.settings import ServerSettings

pytestmark = [pytest.mark.mlx, pytest.mark.serial]


def pairs() -> bytes:
    """Ten preference records in OpenAI's DPO format."""
    lines = [
        json.dumps(
            {
                "input": {"messages": [{"role": "user", "content": f"Tell me about {topic}."}]},
                "preferred_output": [
                    {"role": "assistant", "content": f"Beep! {topic.capitalize()} make me whirr."}
                ],
                "non_preferred_output": [{"role": "assistant", "content": "No."}],
            }
        )
        for topic in TOPICS
    ]
    return ("\n".join(lines) + "\n").encode()


async def test_dpo_from_a_checkpoint_and_orpo_from_the_base(
    client: AsyncOpenAI, http: httpx2.AsyncClient, settings: ServerSettings
) -> None:
    chats = await client.files.create(file=("pip.jsonl", dataset()), purpose="fine-tune")
    sft = await client.fine_tuning.jobs.create(
        model="pip", training_file=chats.id, hyperparameters={"n_epochs": 1}, extra_body=FAST
    )
    sft = await wait_status(client, sft.id, ("succeeded", "failed"))
    assert sft.status == "succeeded", sft.error
    start = (await client.fine_tuning.jobs.checkpoints.list(sft.id)).data[0]
    start_id = start.fine_tuned_model_checkpoint  # pip@run-1:STEP

    upload = await client.files.create(file=("pairs.jsonl", pairs()), purpose="fine-tune")
    # A setting of the adapter's shape that contradicts the starting checkpoint is refused.
    with pytest.raises(openai.BadRequestError) as clash:
        await client.fine_tuning.jobs.create(
            model=start_id,
            training_file=upload.id,
            method={"type": "dpo"},
            extra_body=FAST | {"rank": 8},
        )
    assert clash.value.body["param"] == "rank"  # type: ignore[index]
    assert "differ from the checkpoint" in clash.value.message

    dpo = await client.fine_tuning.jobs.create(
        model=f"{sft.fine_tuned_model}:best",
        training_file=upload.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}},
        extra_body=FAST,
    )
    # The SDK's own types read the job: the method and its resolved hyperparameters.
    assert dpo.method is not None
    assert dpo.method.type == "dpo"
    assert dpo.method.dpo is not None
    assert dpo.method.dpo.hyperparameters is not None
    assert dpo.method.dpo.hyperparameters.beta == pytest.approx(0.2)
    assert dpo.method.dpo.hyperparameters.n_epochs == 1
    assert dpo.model == f"{sft.fine_tuned_model}:best"
    done = await wait_status(client, dpo.id, ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    raw = (await http.get(f"/v1/fine_tuning/jobs/{dpo.id}")).json()
    assert FineTuningJob.model_validate(raw).method == dpo.method
    assert set(raw["method"]) == {"type", "dpo"}  # only the method's own key, as OpenAI sends
    assert done.fine_tuned_model is not None
    run = done.fine_tuned_model.split("@")[1]
    registry = Registry(Path(settings.adapters_path()))
    config = read_record(registry.run_dir("pip", run)).config
    assert (config.training.method, config.training.beta) == ("dpo", 0.2)
    best = registry.resolve(parse_model_id(f"{sft.fine_tuned_model}:best"))
    assert best is not None
    assert config.init_from == f"pip@{best.manifest.run}:{best.manifest.step}"

    orpo = await client.fine_tuning.jobs.create(
        model="pip",
        training_file=upload.id,
        method={"type": "orpo", "orpo": {"hyperparameters": {"beta": 0.5}}},
        extra_body=FAST | {"checkpoint_every": 4},
    )
    assert orpo.method is not None
    assert orpo.method.type == "orpo"
    assert (orpo.method.model_extra or {})["orpo"]["hyperparameters"]["beta"] == 0.5
    orpo = await wait_status(client, orpo.id, ("succeeded", "failed"))
    assert orpo.status == "succeeded", orpo.error
    assert orpo.fine_tuned_model is not None
    config = read_record(registry.run_dir("pip", orpo.fine_tuned_model.split("@")[1])).config
    assert (config.training.method, config.training.beta, config.init_from) == ("orpo", 0.5, None)


@pytest.mark.parametrize(
    ("fields", "status", "param", "text"),
    [
        ({"model": "pip", "method": {"type": "dpo"}, "training_file": "UPLOAD"}, 400, "model",
         "dpo starts from a trained checkpoint"),
        ({"model": "pip@run-7:3", "method": {"type": "dpo"}}, 404, "model", "does not exist"),
        ({"model": "BASE", "suffix": "cog", "method": {"type": "dpo"}, "training_file": "UPLOAD"},
         400, "model", "train cog with supervised or orpo first"),
        ({"model": "pip", "method": {"type": "orpo"}}, 400, "training_file",
         "pip has no preference.jsonl"),
        ({"model": "pip", "method": {"type": "orpo"}, "training_file": "UPLOAD",
          "validation_file": "UPLOAD"}, 400, "validation_file", "is not used"),
        ({"model": "pip", "method": {"type": "orpo"}, "training_file": "UPLOAD",
          "hyperparameters": {"n_epochs": 1}}, 400, "hyperparameters", "method.orpo"),
    ],
)  # fmt: skip
async def test_what_a_preference_job_cannot_train_is_refused(
    http: httpx2.AsyncClient,
    client: AsyncOpenAI,
    base: str,
    fields: dict[str, object],
    status: int,
    param: str,
    text: str,
) -> None:
    upload = await client.files.create(file=("pairs.jsonl", pairs()), purpose="fine-tune")
    swap = {"UPLOAD": upload.id, "BASE": base}
    body = {k: swap.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    response = await http.post("/v1/fine_tuning/jobs", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert text in error["message"]
    assert (await http.get("/v1/fine_tuning/jobs")).json()["data"] == []


async def test_a_preference_job_on_chat_records_is_refused_by_line(
    client: AsyncOpenAI, persona_home: Path
) -> None:
    # Chat records pass the upload's checks (they are a fine SFT file), so the job must look.
    chats = await client.files.create(file=("chats.jsonl", dataset(n=7)), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as refused:
        await client.fine_tuning.jobs.create(
            model="pip", training_file=chats.id, method={"type": "orpo"}
        )
    assert refused.value.body["param"] == "training_file"  # type: ignore[index]
    assert refused.value.body["code"] == "invalid_file"  # type: ignore[index]
    assert "chats.jsonl lines 1, 2, 3, 4, 5, ...: orpo trains" in refused.value.message
    assert "7 of its 7 records are not" in refused.value.message
    upload = await client.files.create(file=("pairs.jsonl", pairs()), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as elsewhere:
        await client.fine_tuning.jobs.create(
            model="pip",
            training_file=upload.id,
            method={"type": "orpo", "supervised": {"hyperparameters": {"n_epochs": 1}}},  # type: ignore[typeddict-item]
        )
    assert elsewhere.value.body["param"] == "method.supervised"  # type: ignore[index]
    assert not (await client.fine_tuning.jobs.list()).data
    assert not (persona_home / "fine_tuning").exists() or not any(
        (persona_home / "fine_tuning").iterdir()
    )
