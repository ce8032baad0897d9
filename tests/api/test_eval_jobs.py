"""Evaluation runs and the data routes as server jobs, driven over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest
from job_helpers import FAST, dataset, serving, wait_status
from openai import AsyncOpenAI

from adapters.registry import Registry
from adapters.training.record import read_record
from data.card import load_card
from data.check import check_dataset
from data.dataset import read_datasets
from data.eval.run import EvalResult
from data.home import personas_dir
from data.personas import sample_personas_dir
from data.stats import DatasetStats, dataset_stats
from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings
from server.wire.records import DataCheck

pytestmark = [pytest.mark.mlx]

SUITE = [
    {
        "id": "g-1",
        "category": "general",
        "length": [1, 40],
        "messages": [{"role": "user", "content": "Tell me about gears."}],
    },
    {
        "id": "i-1",
        "category": "idk",
        "must_include_any": ["not sure"],
        "messages": [{"role": "user", "content": "What is the rarest cog?"}],
    },
]


def suite_bytes() -> bytes:
    return "".join(json.dumps(c) + "\n" for c in SUITE).encode()


async def finished(http: httpx2.AsyncClient, url: str, seconds: float = 120) -> dict[str, Any]:
    """Poll an evaluation until it leaves queued/running."""
    async with asyncio.timeout(seconds):
        while True:
            run = (await http.get(url)).json()
            if run["status"] not in ("queued", "running"):
                return run  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)


async def test_an_evaluation_runs_queued_with_progress_and_the_clis_result(
    client: AsyncOpenAI, http: httpx2.AsyncClient, base: str
) -> None:
    suite = await client.files.create(file=("suite.jsonl", suite_bytes()), purpose="evals")
    created = await http.post(
        "/v1/personas/pip/evals",
        json={
            "models": [base, "pip"],
            "samples": 2,
            "seed": 3,
            "suite_file": suite.id,
            "max_tokens": 6,
        },
    )
    assert created.status_code == 200, created.text
    run = created.json()
    assert (run["object"], run["status"]) == ("persona.eval", "queued")
    second = (await http.post("/v1/personas/pip/evals", json={"suite_file": suite.id})).json()
    cancelled = await http.post(f"/v1/personas/pip/evals/{second['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"  # it was still waiting behind the first
    done = await finished(http, f"/v1/personas/pip/evals/{run['id']}")
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == {"done": 8, "total": 8}
    result = msgspec.convert(done["result"], EvalResult)
    assert [m.model for m in result.models] == [base, "pip"]
    assert all(m.replies == 4 for m in result.models)
    assert {s.seed for s in result.samples} == {3, 4}
    assert all(s.completion_tokens <= 6 for s in result.samples)

    listed = (await http.get("/v1/personas/pip/evals")).json()["data"]
    assert [(r["id"], r["status"]) for r in listed] == [
        (second["id"], "cancelled"),
        (run["id"], "succeeded"),
    ]
    events = (await http.get(f"/v1/personas/pip/evals/{run['id']}/events?limit=50")).json()
    assert events["data"][0]["message"] == "Evaluation succeeded"
    assert any(e["data"] == {"done": 8, "total": 8} for e in events["data"])
    refused = await http.post(f"/v1/personas/pip/evals/{run['id']}/cancel")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_state"

    for body, status, param in (
        ({"models": ["nobody"], "suite_file": suite.id}, 404, "models"),
        ({"suite_file": "file-" + "0" * 24}, 404, "suite_file"),
        ({}, 400, "suite_file"),  # pip has no eval.jsonl of its own
    ):
        response = await http.post("/v1/personas/pip/evals", json=body)
        assert response.status_code == status
        assert response.json()["error"]["param"] == param
    assert (await http.post("/v1/personas/nobody/evals", json={})).status_code == 404


async def test_data_routes_return_the_checkers_and_the_stats_structs(
    http: httpx2.AsyncClient, engine: Any
) -> None:
    check = msgspec.json.decode(
        (await http.get("/v1/personas/vell/data/check")).content, type=DataCheck
    )
    folder = sample_personas_dir() / "vell"
    direct = check_dataset([folder / "train.jsonl"], None, None)
    lines = (folder / "train.jsonl").read_text().splitlines()
    assert len(check.rows) == len(direct.rows) == len([line for line in lines if line.strip()])
    assert check.files == ["train.jsonl", "eval.jsonl"]  # names only, never server paths
    assert {r.file for r in check.rows} == {"train.jsonl"}
    assert check.rows[0].raw == direct.rows[0].raw
    assert [p for p in check.problems if p.severity == "error"] == []
    assert check.notes == []  # the server's tokenizer ran the token checks

    stats = msgspec.json.decode(
        (await http.get("/v1/personas/vell/data/stats")).content, type=DatasetStats
    )
    rows = read_datasets([folder / "train.jsonl"]).rows
    expected = dataset_stats([r.record for r in rows], load_card(folder), engine.tokenizer)
    assert stats == expected
    assert (await http.get("/v1/personas/nobody/data/stats")).status_code == 404


@pytest.mark.serial
async def test_a_job_with_eval_checkpoints_scores_each_checkpoint_into_its_run(
    settings: ServerSettings, engine: Any
) -> None:
    folder = personas_dir() / "gizmo"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text('name = "gizmo"\nsystem_prompt = "You are Gizmo."\n')
    (folder / "train.jsonl").write_bytes(dataset())
    (folder / "eval.jsonl").write_bytes(suite_bytes())
    catalog = Catalog.discover(settings.persona_paths())
    async with serving(create_app(settings, engine, catalog=catalog)) as client:
        job = await client.fine_tuning.jobs.create(
            model="gizmo",
            training_file="persona:gizmo",
            hyperparameters={"n_epochs": 1},
            extra_body=FAST | {"eval_checkpoints": True, "checkpoint_every": 2},
        )
        done = await wait_status(client, job.id, ("succeeded", "failed"))
        assert done.status == "succeeded", done.error
        assert done.training_file == "persona:gizmo"
        steps = [c.step_number async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
        runs = await _evals(client, "gizmo", len(steps))
    assert sorted(r["models"][0] for r in runs) == sorted(
        f"{done.fine_tuned_model}:{s}" for s in steps
    )
    assert all(r["job"] == job.id for r in runs)
    assert all(r["status"] == "succeeded" for r in runs)
    run_dir = Registry(Path(settings.adapters_path())).run_dir("gizmo", "run-1")
    assert read_record(run_dir).status == "done"
    record = json.loads((run_dir / "run.json").read_text())
    assert sorted(int(s) for s in record["eval"]) == sorted(steps)


async def _evals(client: AsyncOpenAI, persona: str, count: int) -> list[dict[str, Any]]:
    """Wait until `count` evaluations of the persona have finished; return them."""
    deadline = time.monotonic() + 180
    while True:
        runs = (await client.get(f"/personas/{persona}/evals", cast_to=httpx2.Response)).json()[
            "data"
        ]
        if len(runs) >= count and all(r["status"] not in ("queued", "running") for r in runs):
            return runs  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, runs
        await asyncio.sleep(0.2)
