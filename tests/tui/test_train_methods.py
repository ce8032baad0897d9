"""The Train screen's method, beta and starting checkpoint, against a real `persona serve` on the
tiny model: SFT first, then DPO from the SFT run's best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_end_to_end as e2e
from fakes import record_notes, wait_for

from adapters.training.record import read_record
from tui.api import ApiClient
from tui.app import make_app
from tui.screens.train import TrainScreen
from tui.settings import TuiSettings


def pair(topic: str) -> str:
    return json.dumps(
        {
            "input": {"messages": [{"role": "user", "content": f"Tell me about {topic}."}]},
            "preferred_output": [
                {"role": "assistant", "content": f"Cheep! {topic.capitalize()} make me sing."}
            ],
            "non_preferred_output": [{"role": "assistant", "content": "No."}],
        }
    )


@pytest.mark.serial
@pytest.mark.mlx
async def test_dpo_from_a_checkpoint_with_its_beta_from_the_train_form(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "server-home"
    folder = home / "personas" / "pip"
    e2e.write_persona(folder)
    (folder / "preference.jsonl").write_text("".join(pair(t) + "\n" for t in e2e.TOPICS))
    port = e2e.free_port()
    url = f"http://127.0.0.1:{port}"
    api = ApiClient(url)
    app = make_app(TuiSettings(url=url, start_server=False, poll_seconds=0.5), api)
    record_notes(app)
    with e2e.server(home, tiny_model_dir, port, tmp_path / "server.log"):
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.status.health.state == "ready", 300)
            await pilot.press("f2")
            train = app.screen
            assert isinstance(train, TrainScreen)
            await wait_for(pilot, lambda: "pip" in train.personas, 30)
            train.persona_select.value = "pip"
            await pilot.pause()
            form = train.form
            assert form.method_select.value == "sft"  # the card's method
            assert form.start is None  # no checkpoint yet: the base model

            # DPO with no checkpoint to start from is stopped here, before the server.
            form.method_select.value = "dpo"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert any("DPO starts from a trained checkpoint" in n for n in app.notes_log)  # type: ignore[attr-defined]
            assert train.job is None

            form.method_select.value = "sft"
            await pilot.press("ctrl+s")
            await wait_for(
                pilot, lambda: train.job is not None and train.job.status == "succeeded", 400
            )
            # The new checkpoints become starting points as the server loads them.
            best = "pip@run-1:best"
            await wait_for(pilot, lambda: best in {v for _, v in form.starts}, 60)

            form.method_select.value = "dpo"
            form.start_select.value = best
            form.query_one("#train-beta").value = "0.3"  # type: ignore[attr-defined]
            await pilot.pause()
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: train.job is not None and train.job.model == best, 30)
            job = train.job
            assert job is not None
            assert job.method.type == "dpo"
            assert job.method.dpo is not None
            assert job.method.dpo.hyperparameters is not None
            assert job.method.dpo.hyperparameters.beta == pytest.approx(0.3)
            await wait_for(
                pilot, lambda: train.job is not None and train.job.status == "succeeded", 400
            )
            done = await api.job(job.id)
            assert done.fine_tuned_model == "pip@run-2"
    config = read_record(home / "adapters" / "pip" / "run-2").config
    assert (config.training.method, config.training.beta) == ("dpo", 0.3)
    assert config.init_from is not None
    assert config.init_from.startswith("pip@run-1:")
