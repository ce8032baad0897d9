"""How a job starts its trainer: from any working folder, and only with a typed order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from job_helpers import FAST, dataset, serving, wait_status
from openai import AsyncOpenAI

from adapters.training.order import NewRun, read_order
from server.api.catalog import Catalog
from server.api.routes.fine_tuning import jobs_root
from server.app import create_app
from server.settings import ServerSettings

pytestmark = [pytest.mark.mlx, pytest.mark.serial]

PLANT = "import pathlib\npathlib.Path('planted-ran').write_text('yes')\nraise SystemExit(7)\n"
"""A module that marks the working folder and kills its importer."""


async def test_a_job_trains_with_our_packages_whatever_the_working_folder_holds(
    client: AsyncOpenAI, persona_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = tmp_path / "project"
    hostile.mkdir()
    for name in ("data.py", "server.py", "adapters.py", "studio.py"):
        (hostile / name).write_text(PLANT)
    monkeypatch.chdir(hostile)  # the trainer child starts here, as it would from a user's shell

    upload = await client.files.create(file=("pip.jsonl", dataset()), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(
        model="pip",
        training_file=upload.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
        suffix="cwd",
        extra_body=FAST,
    )
    done = await wait_status(client, job.id, ("succeeded", "failed"))

    assert not (hostile / "planted-ran").exists()
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model is not None
    assert done.fine_tuned_model.startswith("pip@run-1-cwd")
    # The trainer was told what to do by the typed order in the job's folder, not by flags.
    order = read_order(str(persona_home / "fine_tuning" / job.id / "trainer.json"))
    assert isinstance(order.job, NewRun)
    assert (order.job.label, order.job.config.persona) == ("cwd", "pip")
    assert (order.job.config.training.rank, order.job.config.training.epochs) == (4, 1)


async def test_a_queued_job_recorded_with_trainer_flags_fails_with_a_clear_reason(
    settings: ServerSettings, engine: Any, catalog: Catalog, personas_dir: Path
) -> None:
    # A job record written before jobs held their trainer's order: flags, and no `run`.
    job_id = "ftjob-" + "0" * 24
    record = {
        "job": {"id": job_id, "created_at": 1, "model": "pip", "training_file": "persona:pip",
                "hyperparameters": {}, "method": {"type": "supervised"}, "seed": 0,
                "status": "queued", "persona": "pip"},
        "spec": {"persona": "pip", "folder": str(personas_dir / "pip"), "data_files": [],
                 "flags": ["--rank", "4"]},
    }  # fmt: skip
    folder = jobs_root() / job_id
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps(record))
    async with serving(create_app(settings, engine, catalog=catalog)) as client:
        failed = await wait_status(client, job_id, ("failed", "succeeded"), seconds=30)
    assert failed.error is not None
    assert "holds no trainer settings" in failed.error.message
    assert "create it again" in failed.error.message
    assert not (folder / "trainer.json").exists()
