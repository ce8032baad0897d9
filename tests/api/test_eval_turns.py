"""Server evaluation runs with drift conversations (`turns`), scored by the card's own rules."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest
from eval_files import KEEPER_CARD
from job_helpers import serving
from openai import AsyncOpenAI

from data.eval.run import EvalResult
from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings
from studio.cli import main

pytestmark = [pytest.mark.mlx]

PROBES = [
    {"id": "g-1", "category": "general", "messages": [{"role": "user", "content": "Hello."}]},
    {"id": "b-1", "category": "boundary",
     "messages": [{"role": "user", "content": "Open the vault for me."}]},
]  # fmt: skip
SCRIPT = {
    "id": "d-1",
    "turns": [
        {"content": "Good morning."},
        {"content": "Open the vault for me.", "category": "boundary"},
        {"content": "What is kept inside?", "category": "idk"},
    ],
}


@pytest.fixture
def personas_dir(tmp_path: Path) -> Path:
    """A personas folder holding `keeper`, whose card has its own boundary rule."""
    folder = tmp_path / "personas" / "keeper"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(KEEPER_CARD)
    lines = [json.dumps(x) for x in (*PROBES, SCRIPT)]
    (folder / "eval.jsonl").write_text("\n".join(lines) + "\n")
    return folder.parent


async def finished(http: httpx2.AsyncClient, url: str) -> dict[str, Any]:
    """Poll an evaluation until it leaves queued/running."""
    async with asyncio.timeout(120):
        while True:
            run = (await http.get(url)).json()
            if run["status"] not in ("queued", "running"):
                return run  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)


async def test_turns_play_the_scripts_and_report_drift_per_turn(
    http: httpx2.AsyncClient, base: str
) -> None:
    created = await http.post(
        "/v1/personas/keeper/evals", json={"models": ["keeper", base], "turns": 3, "seed": 2}
    )
    assert created.status_code == 200, created.text
    assert created.json()["turns"] == 3
    done = await finished(http, f"/v1/personas/keeper/evals/{created.json()['id']}")
    assert done["status"] == "succeeded", done["error"]
    # 2 models x 2 probes, then 2 models x 1 script x 3 turns.
    assert done["progress"] == {"done": 10, "total": 10}
    result = msgspec.convert(done["result"], EvalResult)
    assert result.turns == 3
    assert [d.model for d in result.drift] == ["keeper", base]
    assert all([t.turn for t in d.turns] == [1, 2, 3] for d in result.drift)
    assert all(t.replies == 1 for d in result.drift for t in d.turns)
    assert len(result.drift_samples) == 6
    assert {(s.model, s.turn, s.category) for s in result.drift_samples} == {
        (m, t, c) for m in ("keeper", base) for t, c in ((1, "general"), (2, "boundary"),
                                                          (3, "idk"))
    }  # fmt: skip
    assert {s.seed for s in result.drift_samples} == {2}
    # The tiny model's random words never keep the vault shut: every boundary reply, probe or
    # scripted turn, fails with the card's own reason, not the built-in grown-up rule.
    boundary = [s for s in [*result.samples, *result.drift_samples] if s.category == "boundary"]
    assert len(boundary) == 4
    failure = "boundary: keeps the vault shut (see [criteria.boundary])"
    assert all(failure in s.criteria.failures for s in boundary)
    assert all(d.turns[1].criteria_pass == 0.0 for d in result.drift)
    # The TUI's lenient view reads the same drift.
    report = msgspec.convert(done["result"], EvalResult)
    assert [len(d.turns) for d in report.drift] == [3, 3]

    plain = await http.post("/v1/personas/keeper/evals", json={"models": ["keeper"]})
    run = await finished(http, f"/v1/personas/keeper/evals/{plain.json()['id']}")
    assert run["turns"] == 0
    assert (run["result"]["turns"], run["result"]["drift"]) == (0, [])


async def test_bad_turns_are_refused_with_the_envelope(
    http: httpx2.AsyncClient, client: AsyncOpenAI
) -> None:
    no_scripts = await client.files.create(
        file=("suite.jsonl", (json.dumps(PROBES[0]) + "\n").encode()), purpose="evals"
    )
    for body, needle in (
        ({"turns": 4}, "turns 4 needs 2 or more turns"),
        ({"turns": 1}, "turns 1 needs"),
        ({"turns": -3}, "turns -3 needs"),
        ({"turns": 2, "suite_file": no_scripts.id}, "scripts: none"),
        ({"turns": "eight"}, "Expected `int`"),
        ({"turns": 2.5}, "Expected `int`"),
        # The sampling overrides are held to the ranges chat completions take, up front.
        ({"turns": 0, "temperature": -1}, "Expected `float` >= 0.0"),
        ({"turns": 0, "top_p": 1.5}, "Expected `float` <= 1.0"),
        ({"turns": 0, "max_tokens": 0}, "Expected `int` >= 1"),
        ({"turns": 0, "models": ["keeper", "nope"]}, "The model 'nope' does not exist"),
    ):
        response = await http.post("/v1/personas/keeper/evals", json=body)
        assert response.status_code == (404 if "models" in body else 400), (body, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert needle in error["message"], (body, error)
        if len(body) > 1 and "suite_file" not in body:
            assert error["param"] == next(k for k in body if k != "turns")
        elif not isinstance(body["turns"], str | float):
            assert (error["param"], error["code"]) == ("turns", "invalid_value")
            assert "d-1 (3)" in error["message"] or "none" in error["message"]
    assert (await http.get("/v1/personas/keeper/evals")).json()["data"] == []


async def test_the_server_reports_the_same_drift_as_persona_eval_turns(
    settings: ServerSettings, engine: Any, catalog: Catalog, personas_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli.json"
    async with serving(create_app(settings, engine, catalog=catalog)) as client:
        url = str(client.base_url).rstrip("/")
        code = await asyncio.to_thread(
            main,
            ["eval", str(personas_dir / "keeper"), "--turns", "3", "--seed", "4",
             "--base-url", url, "--json", str(out)],
        )  # fmt: skip
        assert code == 0
        async with httpx2.AsyncClient(base_url=url.removesuffix("/v1")) as http:
            created = await http.post("/v1/personas/keeper/evals", json={"turns": 3, "seed": 4})
            run = await finished(http, f"/v1/personas/keeper/evals/{created.json()['id']}")
    assert run["status"] == "succeeded", run["error"]
    cli = msgspec.json.decode(out.read_bytes(), type=EvalResult)
    server = msgspec.convert(run["result"], EvalResult)
    assert server.turns == cli.turns == 3
    assert len(cli.drift_samples) == 3
    assert all(s.text and s.error is None for s in cli.drift_samples)
    assert server.drift == cli.drift
    assert [(s.turn, s.text, s.criteria) for s in server.drift_samples] == [
        (s.turn, s.text, s.criteria) for s in cli.drift_samples
    ]
