"""A fine-tuning job started from a folder holding the user's own `data.py` and `server.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
from job_helpers import FAST, dataset, wait_status
from openai import AsyncOpenAI

from adapters.training.order import NewRun, read_order

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
