"""`method: {"type": "guard"}` fine-tuning jobs: the trainer child trains and publishes the
persona's guard, the job reports it as the persona, and what a guard job cannot use is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.fine_tuning import FineTuningJob

from server.settings import ServerSettings
from tests.api.conftest import FIXTURE_PERSONAS
from tests.api.job_helpers import wait_status
from tests.guard_files import FLAGGED_DISCLOSURE, write_persona

pytestmark = pytest.mark.mlx


@pytest.fixture
def personas_dir(tmp_path: Path) -> Path:
    """`pip` (no guard) and `wren` (a guard)."""
    folder = tmp_path / "personas"
    shutil.copytree(FIXTURE_PERSONAS / "pip", folder / "pip")
    write_persona(folder / "wren")
    return folder


async def test_a_guard_job_trains_and_publishes_the_guard(
    client: AsyncOpenAI, http: httpx.AsyncClient, settings: ServerSettings
) -> None:
    job = await client.fine_tuning.jobs.create(
        model="wren",
        training_file="persona:wren",  # the persona's own tagged data on the server
        method={"type": "guard"},  # type: ignore[typeddict-item]
    )
    assert job.method is not None
    assert job.method.type == "guard"
    done = await wait_status(client, job.id, ("succeeded", "failed"), seconds=600)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == "wren"
    raw = (await http.get(f"/v1/fine_tuning/jobs/{job.id}")).json()
    # The SDK's strict type names only OpenAI's methods (as with ORPO); the rest of the job is
    # OpenAI's shape.
    FineTuningJob.model_validate(raw | {"method": {"type": "supervised"}})
    assert raw["method"] == {"type": "guard", "guard": {}}
    guard = Path(settings.adapters_path()) / "wren" / "guard.json"
    assert guard.is_file()
    scored = await client.moderations.create(model="wren", input=FLAGGED_DISCLOSURE)
    assert scored.results[0].flagged


async def test_what_a_guard_job_cannot_use_is_refused(client: AsyncOpenAI) -> None:
    cases = [
        ({"model": "pip"}, "model", "has no [guard]"),
        ({"model": "wren", "extra_body": {"rank": 4}}, "rank", "drop rank"),
        ({"model": "wren", "hyperparameters": {"n_epochs": 2}}, "hyperparameters", "no hyper"),
        ({"model": "wren", "extra_body": {"eval_checkpoints": True}}, "eval_checkpoints", "probe"),
    ]
    for fields, param, words in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.fine_tuning.jobs.create(
                method={"type": "guard"},  # type: ignore[typeddict-item]
                training_file=f"persona:{fields['model']}",
                **fields,  # type: ignore[arg-type]
            )
        assert caught.value.body["param"] == param, fields  # type: ignore[index]
        assert words in caught.value.message
